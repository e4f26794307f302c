/* test_upstream_env.h — what every upstream test shares: the test server
 * (test_upstream_server.h), an upstream loop, and result slots its callbacks fill.
 * Header-only: each test_upstream*.c includes it.  cmocka asserts run on the test thread
 * only; callbacks (loop thread) just record, under env.lock. */
#ifndef TEST_UPSTREAM_ENV_H
#define TEST_UPSTREAM_ENV_H

#include "test_upstream_server.h"

/* ---------------------------------------------------------------------------------- */
/* Result slots                                                                        */
/* ---------------------------------------------------------------------------------- */

#define SLOTS 1100

typedef struct env env;

/* What on_chunk returns. */
enum {
    DATA_CONTINUE_ONLY = 0,  /* never PROGRESS */
    DATA_PROGRESS_ON_EVENT,  /* PROGRESS for chunks holding "data:" */
};

typedef struct slot {
    env *env;
    int calls;               /* done callbacks */
    rf_transport_error transport;
    long status;
    long retry_after_ms;
    long latency_ms;
    long first_token_ms;
    size_t bytes_received;
    char error[256];
    char *body;
    size_t body_len;
    /* streaming (on_chunk) */
    int mode;
    int abort_at;            /* ABORT on this event-bearing chunk (1-based); 0 = never */
    int chunks;              /* on_data calls */
    int events;              /* of which held "data:" */
    int chunks_after_done;
    long data_status;
    char *stream;            /* every chunk, concatenated */
    size_t stream_len;
} slot;

struct env {
    server srv;
    upstream *up;
    pthread_mutex_t lock;
    int completed;
    slot *slots;             /* SLOTS of them */
    int order[256];
    int norder;
};

HELPER void on_done(upstream_result *res, void *ud)
{
    slot *s = ud;
    env *e = s->env;
    pthread_mutex_lock(&e->lock);
    s->calls++;
    s->transport = res->transport;
    s->status = res->http_status;
    s->retry_after_ms = res->retry_after_ms;
    s->latency_ms = res->latency_ms;
    s->first_token_ms = res->first_token_ms;
    s->bytes_received = res->bytes_received;
    snprintf(s->error, sizeof s->error, "%s", res->error);
    free(s->body);
    s->body = res->body;  /* take it */
    s->body_len = res->body_len;
    res->body = NULL;
    e->completed++;
    pthread_mutex_unlock(&e->lock);
}

/* on_data for tests: records every chunk; what it returns is set by the slot's mode. */
HELPER int on_chunk(const char *chunk, size_t len, long status, void *ud)
{
    slot *s = ud;
    env *e = s->env;
    pthread_mutex_lock(&e->lock);
    s->chunks++;
    if (s->calls)
        s->chunks_after_done++;
    s->data_status = status;
    s->stream = xrealloc(s->stream, s->stream_len + len + 1);
    memcpy(s->stream + s->stream_len, chunk, len);
    s->stream_len += len;
    s->stream[s->stream_len] = '\0';
    int rc = UPSTREAM_DATA_CONTINUE;
    if (memmem(chunk, len, "data:", 5)) {
        s->events++;
        if (s->mode == DATA_PROGRESS_ON_EVENT)
            rc = UPSTREAM_DATA_PROGRESS;
        if (s->abort_at && s->events >= s->abort_at)
            rc = UPSTREAM_DATA_ABORT;
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* Wait until `n` callbacks have run; 1 if they did within timeout_ms. */
HELPER int wait_completed(env *e, int n, long timeout_ms)
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

HELPER int completed(env *e)
{
    pthread_mutex_lock(&e->lock);
    int n = e->completed;
    pthread_mutex_unlock(&e->lock);
    return n;
}

/* Read an int the loop thread writes. */
HELPER int locked_int(env *e, const int *p)
{
    pthread_mutex_lock(&e->lock);
    int v = *p;
    pthread_mutex_unlock(&e->lock);
    return v;
}

HELPER upstream_request *make_req(env *e, const char *path, long timeout_ms, size_t max)
{
    upstream_request *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_true(asprintf(&r->url, "http://127.0.0.1:%d%s", e->srv.port, path) > 0);
    r->body = strdup("{\"model\":\"m\",\"messages\":[]}");
    r->timeout_ms = timeout_ms;
    r->max_response = max;
    return r;
}

/* Submit r for slot i (cmocka fails the test when it is refused). */
HELPER long submit_req(env *e, upstream_request *r, int slot_i)
{
    rf_err err;
    rf_err_clear(&err);
    e->slots[slot_i].env = e;
    long id = upstream_submit(e->up, r, on_done, &e->slots[slot_i], &err);
    if (id <= 0)
        fail_msg("upstream_submit: %s", err.msg);
    return id;
}

HELPER long submit(env *e, const char *path, long timeout_ms, size_t max, int slot_i)
{
    return submit_req(e, make_req(e, path, timeout_ms, max), slot_i);
}

/* A streaming request: on_chunk with `mode`, and the three limits. */
HELPER long submit_stream(env *e, const char *path, long timeout_ms, long first_ms,
                          long stall_ms, int mode, int slot_i)
{
    upstream_request *r = make_req(e, path, timeout_ms, MIB);
    r->first_token_timeout_ms = first_ms;
    r->stall_timeout_ms = stall_ms;
    r->on_data = on_chunk;
    e->slots[slot_i].mode = mode;
    return submit_req(e, r, slot_i);
}

HELPER int wait_idle(upstream *up, long timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (upstream_in_flight(up) != 0 && now_ms() < deadline)
        sleep_ms(5);
    return upstream_in_flight(up) == 0;
}

HELPER int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (!e || !(e->slots = calloc(SLOTS, sizeof *e->slots)))
        return -1;
    pthread_mutex_init(&e->lock, NULL);
    if (server_start(&e->srv) < 0)
        return -1;
    rf_err err;
    e->up = upstream_start(&err);
    if (!e->up)
        return -1;
    *state = e;
    return 0;
}

HELPER int teardown(void **state)
{
    env *e = *state;
    upstream_stop(e->up);  /* first: closes the client ends */
    server_stop(&e->srv);
    for (int i = 0; i < SLOTS; i++) {
        free(e->slots[i].body);
        free(e->slots[i].stream);
    }
    free(e->slots);
    pthread_mutex_destroy(&e->lock);
    free(e);
    return 0;
}

#endif
