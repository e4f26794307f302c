/* test_upstream.c — upstream.c's core contract against the scripted test server
 * (test_upstream_env.h): statuses, headers, Retry-After, limits, cancellation, timers,
 * submit from callbacks, stop.  Streaming and deadlines are in test_upstream_stream.c;
 * load, descriptors and posts in test_upstream_fd.c. */
#include "test_upstream_env.h"

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
    assert_int_equal(s->bytes_received, 11);
    /* without on_data every body byte is progress */
    assert_true(s->first_token_ms >= 0 && s->first_token_ms <= s->latency_ms);
    assert_true(wait_idle(e->up, 1000));
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
    assert_non_null(strstr(s->body, "\r\nAuthorization: Bearer [REDACTED]\r\n"));
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

    /* all UPSTREAM_MAX_HEADERS extra headers go out */
    upstream_request *h = make_req(e, "/echo", 5000, MIB);
    for (int i = 0; i < UPSTREAM_MAX_HEADERS; i++)
        assert_true(asprintf(&h->extra_headers[i], "X-H%d: v%d", i, i) > 0);
    submit_req(e, h, 2);
    assert_true(wait_completed(e, 3, 5000));
    assert_int_equal(UPSTREAM_MAX_HEADERS, 8);
    for (int i = 0; i < UPSTREAM_MAX_HEADERS; i++) {
        char line[64];
        snprintf(line, sizeof line, "\r\nX-H%d: v%d\r\n", i, i);
        assert_non_null(strstr(e->slots[2].body, line));
    }
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
    assert_non_null(strstr(s->error, "no complete answer within 300 ms"));
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
    assert_int_equal(e->slots[2].bytes_received, BIG_BODY);
}

static void test_truncated_redirect_gzip(void **state)
{
    env *e = *state;
    submit(e, "/close", 5000, MIB, 0);
    submit(e, "/redirect", 5000, MIB, 1);
    submit(e, "/gzip", 5000, MIB, 2);
    submit(e, "/nope", 5000, MIB, 3);
    submit(e, "/cut", 5000, MIB, 4);
    assert_true(wait_completed(e, 5, 5000));
    assert_int_equal(e->slots[0].transport, RF_TE_RESET);      /* closed before replying */
    assert_non_null(strstr(e->slots[0].error, "closed before any response"));
    assert_int_equal(e->slots[4].transport, RF_TE_TRUNCATED);  /* closed mid-body */
    assert_non_null(strstr(e->slots[4].error, "cut off"));
    assert_int_equal(e->slots[4].bytes_received, 10);
    assert_null(e->slots[4].body);
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
    assert_int_equal(upstream_bytes_received(e->up, slow), 0);
    assert_int_equal(upstream_cancel(e->up, slow), 0);  /* live: its bytes so far */
    assert_int_equal(upstream_bytes_received(e->up, slow), -1);
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
    assert_int_equal(upstream_cancel(e->up, 987654), -1);
    assert_int_equal(upstream_cancel(e->up, ids[1]), -1);
    assert_int_equal(upstream_cancel(e->up, -1), -1);
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
        cmocka_unit_test_setup_teardown(test_stop_abandons_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
