/* test_upstream_server.h — the HTTP/1.1 server the upstream tests talk to.  Header-only,
 * included through test_upstream_env.h by each test_upstream*.c.
 *
 * One thread, epoll, non-blocking sockets, keep-alive: it holds a thousand connections as
 * easily as one, under valgrind too (which allows few threads).  Each request gets a
 * script of steps (send bytes, wait, close, hold until the client hangs up) chosen by its
 * path; query parameters tune some (n = events, gap = ms between them):
 *   /ok          200 {"ok":true}
 *   /echo        200, the body is the raw request it received (to check headers)
 *   /retry       429 with Retry-After: 3 and a JSON error body
 *   /retry-date  503 with Retry-After as an HTTP date 10 s ahead
 *   /slow        waits 2 s (the client may hang up first), then 200
 *   /later       waits 300 ms, then 200
 *   /big         2 MiB body with Content-Length;  /bigchunked  the same, chunked
 *   /close       closes the connection without answering
 *   /reset       resets it (RST) without answering
 *   /cut         200 promising 100 bytes, sends 10, closes
 *   /redirect    302 to /ok;  /gzip  200 with Content-Encoding: gzip and raw bytes
 *   /err500      500 with a JSON error body
 *   /sse         SSE (chunked): n events "data: {"i":k}", gap ms apart, then [DONE]
 *   /sse-comments  SSE headers, then n ": keepalive" comments gap ms apart, then holds
 *   /sse-stall   n events gap ms apart, then holds (silence)
 *   /sse-stall-comments  one event, then comments every gap ms (bytes, no tokens)
 *   /sse-hold    one event, then holds
 *   /sse-cut     one event, then closes mid-stream (no last chunk)
 *   /sse-key     an event quoting TEST_KEY split across two chunks, then [DONE]
 *   /sse-keytail one event ending in the first 5 characters of TEST_KEY, then the end
 *   /drip        200 chunked: n one-byte chunks gap ms apart, then holds
 *   /headers-only  200 chunked headers, then holds (no body byte ever)
 *   otherwise    404
 * A TLS ClientHello gets a plain-text 400, which no TLS client accepts.
 * Counters (under srv.lock): connections accepted, open now and at most; hangups = the
 * client closed while a script was still running (a cancelled or aborted transfer). */
#ifndef TEST_UPSTREAM_SERVER_H
#define TEST_UPSTREAM_SERVER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "upstream.h"

#define HELPER     static __attribute__((unused))
#define BIG_BODY   (2 * 1024 * 1024)
#define MIB        (1024 * 1024)
#define TEST_KEY   "sk-test-secret-123"

HELPER int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

HELPER void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Out of memory in the test harness itself: nothing sensible to do but stop. */
static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "test server: out of memory\n");
        exit(99);
    }
    return q;
}

/* ---------------------------------------------------------------------------------- */
/* Scripts                                                                             */
/* ---------------------------------------------------------------------------------- */

enum { STEP_SEND, STEP_WAIT, STEP_CLOSE, STEP_RESET, STEP_HOLD };

typedef struct step {
    int kind;
    char *data;
    size_t len;
    long ms;
} step;

typedef struct script {
    step *v;
    size_t n, cap;
} script;

static void script_add(script *s, int kind, const void *data, size_t len, long ms)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    step *st = &s->v[s->n++];
    st->kind = kind;
    st->len = len;
    st->ms = ms;
    st->data = NULL;
    if (data) {
        st->data = xrealloc(NULL, len);
        memcpy(st->data, data, len);
    }
}

static void script_free(script *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].data);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void put(script *s, const char *text)
{
    script_add(s, STEP_SEND, text, strlen(text), 0);
}

static void putf(script *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(script *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    script_add(s, STEP_SEND, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, 0);
}

static void pause_for(script *s, long ms)
{
    script_add(s, STEP_WAIT, NULL, 0, ms);
}

static void put_chunk(script *s, const char *text)
{
    putf(s, "%zx\r\n%s\r\n", strlen(text), text);
}

static void put_response(script *s, int status, const char *reason, const char *headers,
                         const void *body, size_t len)
{
    putf(s, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
         status, reason, len, headers);
    if (len)
        script_add(s, STEP_SEND, body, len, 0);
}

static void put_sse_head(script *s)
{
    put(s, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           "Transfer-Encoding: chunked\r\n\r\n");
}

static long qparam(const char *query, const char *name, long dflt)
{
    size_t nl = strlen(name);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (strncmp(p, name, nl) == 0 && p[nl] == '=')
            return strtol(p + nl + 1, NULL, 10);
    return dflt;
}

static void build_script(script *s, const char *target, const char *raw, size_t raw_len)
{
    static const char ok[] = "{\"ok\":true}";
    char path[256];
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    if (plen >= sizeof path)
        plen = sizeof path - 1;
    memcpy(path, target, plen);
    path[plen] = '\0';
    const char *query = q ? q + 1 : "";
    long n = qparam(query, "n", 5), gap = qparam(query, "gap", 50);
    char line[128];

    if (strcmp(path, "/ok") == 0) {
        put_response(s, 200, "OK", "", ok, strlen(ok));
    } else if (strcmp(path, "/echo") == 0) {
        put_response(s, 200, "OK", "", raw, raw_len);
    } else if (strcmp(path, "/retry") == 0) {
        static const char body[] = "{\"error\":{\"message\":\"slow down\"}}";
        put_response(s, 429, "Too Many Requests", "Retry-After: 3\r\n", body, strlen(body));
    } else if (strcmp(path, "/retry-date") == 0) {
        char hdr[128];
        time_t t = time(NULL) + 10;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(hdr, sizeof hdr, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        put_response(s, 503, "Service Unavailable", hdr, "", 0);
    } else if (strcmp(path, "/slow") == 0 || strcmp(path, "/later") == 0) {
        pause_for(s, strcmp(path, "/slow") == 0 ? 2000 : 300);
        put_response(s, 200, "OK", "", ok, strlen(ok));
    } else if (strcmp(path, "/big") == 0 || strcmp(path, "/bigchunked") == 0) {
        char *body = xrealloc(NULL, BIG_BODY);
        memset(body, 'a', BIG_BODY);
        if (strcmp(path, "/big") == 0) {
            put_response(s, 200, "OK", "", body, BIG_BODY);
        } else {
            const size_t chunk = 64 * 1024;
            put(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (size_t off = 0; off < BIG_BODY; off += chunk) {
                putf(s, "%zx\r\n", chunk);
                script_add(s, STEP_SEND, body + off, chunk, 0);
                put(s, "\r\n");
            }
            put(s, "0\r\n\r\n");
        }
        free(body);
    } else if (strcmp(path, "/close") == 0) {
        script_add(s, STEP_CLOSE, NULL, 0, 0);
    } else if (strcmp(path, "/reset") == 0) {
        script_add(s, STEP_RESET, NULL, 0, 0);
    } else if (strcmp(path, "/cut") == 0) {
        put(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        script_add(s, STEP_CLOSE, NULL, 0, 0);
    } else if (strcmp(path, "/redirect") == 0) {
        put_response(s, 302, "Found", "Location: /ok\r\n", "", 0);
    } else if (strcmp(path, "/gzip") == 0) {
        static const unsigned char gz[] = { 0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 'r', 'a', 'w' };
        put_response(s, 200, "OK", "Content-Encoding: gzip\r\n", gz, sizeof gz);
    } else if (strcmp(path, "/err500") == 0) {
        static const char body[] = "{\"error\":{\"message\":\"boom\",\"code\":500}}";
        put_response(s, 500, "Internal Server Error", "", body, strlen(body));
    } else if (strcmp(path, "/sse") == 0) {
        put_sse_head(s);
        for (long i = 1; i <= n; i++) {
            pause_for(s, gap);
            snprintf(line, sizeof line, "data: {\"i\":%ld}\n\n", i);
            put_chunk(s, line);
        }
        put_chunk(s, "data: [DONE]\n\n");
        put(s, "0\r\n\r\n");
    } else if (strcmp(path, "/sse-comments") == 0) {
        put_sse_head(s);
        for (long i = 0; i < n; i++) {
            put_chunk(s, ": keepalive\n\n");
            pause_for(s, gap);
        }
        script_add(s, STEP_HOLD, NULL, 0, 0);
    } else if (strcmp(path, "/sse-stall") == 0 || strcmp(path, "/sse-hold") == 0) {
        put_sse_head(s);
        if (strcmp(path, "/sse-hold") == 0)
            n = 1;
        for (long i = 1; i <= n; i++) {
            snprintf(line, sizeof line, "data: {\"i\":%ld}\n\n", i);
            put_chunk(s, line);
            if (i < n)
                pause_for(s, gap);
        }
        script_add(s, STEP_HOLD, NULL, 0, 0);
    } else if (strcmp(path, "/sse-stall-comments") == 0) {
        put_sse_head(s);
        put_chunk(s, "data: {\"i\":1}\n\n");
        for (int i = 0; i < 100; i++) {
            pause_for(s, gap);
            put_chunk(s, ": keepalive\n\n");
        }
        script_add(s, STEP_HOLD, NULL, 0, 0);
    } else if (strcmp(path, "/sse-cut") == 0) {
        put_sse_head(s);
        put_chunk(s, "data: {\"i\":1}\n\n");
        pause_for(s, 50);
        script_add(s, STEP_CLOSE, NULL, 0, 0);
    } else if (strcmp(path, "/sse-key") == 0) {
        put_sse_head(s);
        put_chunk(s, "data: {\"said\":\"abc sk-test-");
        pause_for(s, 100);   /* so the key arrives in two reads */
        put_chunk(s, "secret-123 def\"}\n\n");
        put_chunk(s, "data: [DONE]\n\n");
        put(s, "0\r\n\r\n");
    } else if (strcmp(path, "/sse-keytail") == 0) {
        put_sse_head(s);
        put_chunk(s, "data: {\"i\":1}\n\nx sk-te");
        pause_for(s, 50);
        put(s, "0\r\n\r\n");
    } else if (strcmp(path, "/drip") == 0) {
        put(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (long i = 0; i < n; i++) {
            put_chunk(s, "x");
            pause_for(s, gap);
        }
        script_add(s, STEP_HOLD, NULL, 0, 0);
    } else if (strcmp(path, "/headers-only") == 0) {
        put_sse_head(s);
        script_add(s, STEP_HOLD, NULL, 0, 0);
    } else {
        put_response(s, 404, "Not Found", "", "", 0);
    }
}

/* ---------------------------------------------------------------------------------- */
/* The server                                                                          */
/* ---------------------------------------------------------------------------------- */

typedef struct tconn {
    int fd;
    int dead;                /* closed; freed after the current batch of events */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    int out_armed;           /* EPOLLOUT registered */
    script sc;
    size_t cur;
    int busy;                /* a script is running */
    int64_t wait_until;      /* in a WAIT step: when it ends; 0 otherwise */
    struct tconn *next;
} tconn;

typedef struct server {
    int fd, port, epfd, stopfd;
    pthread_t thread;
    pthread_mutex_t lock;    /* the counters */
    int accepted, live, max_live, hangups;
    tconn *conns;            /* server thread only */
} server;

static void conn_close(server *s, tconn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    pthread_mutex_lock(&s->lock);
    s->live--;
    pthread_mutex_unlock(&s->lock);
}

/* The client went away (EOF, reset, EPIPE). */
static void conn_gone(server *s, tconn *c)
{
    if (c->busy) {
        pthread_mutex_lock(&s->lock);
        s->hangups++;
        pthread_mutex_unlock(&s->lock);
    }
    conn_close(s, c);
}

static void conn_arm(server *s, tconn *c, int out)
{
    if (c->out_armed == out)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = out;
}

static void conn_flush(server *s, tconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_arm(s, c, 1);
            return;
        } else {
            conn_gone(s, c);
            return;
        }
    }
    c->out_off = c->out_len = 0;
    conn_arm(s, c, 0);
}

static void conn_read(server *s, tconn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 16384;
            c->in = xrealloc(c->in, c->in_cap);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_gone(s, c);
        return;
    }
}

/* A whole request waiting in c->in: load its script.  0 when there is none yet. */
static int conn_start(tconn *c)
{
    if (c->in_len > 0 && (unsigned char)c->in[0] == 0x16) {  /* a TLS ClientHello */
        put(&c->sc, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        script_add(&c->sc, STEP_CLOSE, NULL, 0, 0);
        c->in_len = 0;
        c->busy = 1;
        c->cur = 0;
        return 1;
    }
    char *end = c->in_len ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
    if (!end)
        return 0;
    size_t head_len = (size_t)(end + 4 - c->in);
    char *head = xrealloc(NULL, head_len + 1);
    memcpy(head, c->in, head_len);
    head[head_len] = '\0';
    size_t body_len = 0;
    const char *cl = strcasestr(head, "\r\ncontent-length:");
    if (cl)
        body_len = strtoul(cl + 17, NULL, 10);
    char target[512] = "";
    sscanf(head, "%*s %511s", target);
    free(head);
    if (c->in_len < head_len + body_len)
        return 0;
    size_t req_len = head_len + body_len;
    build_script(&c->sc, target, c->in, req_len);
    memmove(c->in, c->in + req_len, c->in_len - req_len);
    c->in_len -= req_len;
    c->busy = 1;
    c->cur = 0;
    return 1;
}

static void out_append(tconn *c, const char *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        while (c->out_cap < c->out_len + len)
            c->out_cap = c->out_cap ? c->out_cap * 2 : 16384;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* Run the connection's script as far as it can go now. */
static void conn_advance(server *s, tconn *c)
{
    while (!c->dead) {
        if (!c->busy) {
            if (!conn_start(c))
                return;
            continue;
        }
        if (c->cur == c->sc.n) {
            script_free(&c->sc);
            c->busy = 0;
            continue;
        }
        step *st = &c->sc.v[c->cur];
        if (st->kind == STEP_SEND) {
            out_append(c, st->data, st->len);
            c->cur++;
            conn_flush(s, c);
        } else if (st->kind == STEP_WAIT) {
            int64_t now = now_ms();
            if (!c->wait_until)
                c->wait_until = now + st->ms;
            if (now < c->wait_until)
                return;
            c->wait_until = 0;
            c->cur++;
        } else if (st->kind == STEP_CLOSE || st->kind == STEP_RESET) {
            if (c->out_off < c->out_len)
                return;  /* after the flush */
            if (st->kind == STEP_RESET) {  /* linger 0: close sends RST, not FIN */
                struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            c->busy = 0;
            conn_close(s, c);
        } else {
            return;  /* STEP_HOLD: until the client hangs up */
        }
    }
}

static void accept_all(server *s)
{
    for (;;) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                sleep_ms(1);  /* do not spin; the test that starves fds gives them back */
            return;
        }
        tconn *c = xrealloc(NULL, sizeof *c);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
        c->next = s->conns;
        s->conns = c;
        pthread_mutex_lock(&s->lock);
        s->accepted++;
        if (++s->live > s->max_live)
            s->max_live = s->live;
        pthread_mutex_unlock(&s->lock);
    }
}

static void conn_free(tconn *c)
{
    script_free(&c->sc);
    free(c->in);
    free(c->out);
    free(c);
}

static void *server_main(void *arg)
{
    server *s = arg;
    struct epoll_event evs[256];
    for (;;) {
        int timeout = 1000;
        int64_t now = now_ms();
        for (tconn *c = s->conns; c; c = c->next)
            if (c->wait_until && c->wait_until - now < timeout)
                timeout = c->wait_until > now ? (int)(c->wait_until - now) : 0;
        int n = epoll_wait(s->epfd, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &s->stopfd)
                goto out;
            if (p == &s->fd) {
                accept_all(s);
                continue;
            }
            tconn *c = p;
            if (!c->dead && (evs[i].events & EPOLLOUT))
                conn_flush(s, c);
            if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                conn_read(s, c);
        }
        for (tconn **pp = &s->conns; *pp;) {
            tconn *c = *pp;
            conn_advance(s, c);
            if (c->dead) {
                *pp = c->next;
                conn_free(c);
            } else {
                pp = &c->next;
            }
        }
    }
out:
    while (s->conns) {
        tconn *c = s->conns;
        s->conns = c->next;
        conn_close(s, c);
        conn_free(c);
    }
    return NULL;
}

HELPER int server_start(server *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->stopfd = eventfd(0, EFD_CLOEXEC);
    if (s->fd < 0 || s->epfd < 0 || s->stopfd < 0)
        return -1;
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->fd, 4096) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) < 0)
        return -1;
    s->port = ntohs(a.sin_port);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->fd };
    struct epoll_event sv = { .events = EPOLLIN, .data.ptr = &s->stopfd };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stopfd, &sv) < 0)
        return -1;
    return pthread_create(&s->thread, NULL, server_main, s) == 0 ? 0 : -1;
}

HELPER void server_stop(server *s)
{
    uint64_t one = 1;
    if (write(s->stopfd, &one, sizeof one) != sizeof one)
        return;  /* cannot happen; the thread then outlives the test */
    pthread_join(s->thread, NULL);
    close(s->fd);
    close(s->epfd);
    close(s->stopfd);
    pthread_mutex_destroy(&s->lock);
}

HELPER int server_count(server *s, const int *counter)
{
    pthread_mutex_lock(&s->lock);
    int n = *counter;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* A port nothing listens on. */
HELPER int closed_port(void)
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

#endif
