/* test_upstream_stream.c — streaming through on_data, and the limits that match how
 * answers fail: first token, stall, whole attempt; ABORT; cancel closing the connection;
 * reset / cut / TLS failures; error bodies while streaming; the key in a stream.
 *
 * Timings are asserted with wide margins (a limit of X fired between X and 3X), never
 * exactly: these run under valgrind too. */
#include "test_upstream_env.h"

#include <sched.h>

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_stream_chunks(void **state)
{
    env *e = *state;
    submit_stream(e, "/sse?n=5&gap=60", 10000, 3000, 2000, DATA_PROGRESS_ON_EVENT, 0);
    assert_true(wait_completed(e, 1, 8000));
    slot *s = &e->slots[0];
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->transport, RF_TE_NONE);
    assert_string_equal(s->error, "");
    assert_int_equal(s->status, 200);
    assert_null(s->body);                    /* streamed, not kept */
    assert_int_equal(s->body_len, 0);
    assert_int_equal(s->data_status, 200);
    assert_true(s->chunks >= 3);             /* delivered as it came, not at the end */
    assert_int_equal(count_of(s->stream, "data: "), 6);
    assert_non_null(strstr(s->stream, "data: {\"i\":1}\n\n"));
    assert_non_null(strstr(s->stream, "data: {\"i\":5}\n\ndata: [DONE]\n\n"));
    assert_int_equal(s->bytes_received, s->stream_len);
    assert_true(s->first_token_ms >= 50 && s->first_token_ms < 3000);
    assert_true(s->latency_ms >= 5 * 55);
    assert_int_equal(s->chunks_after_done, 0);
    assert_true(wait_idle(e->up, 1000));
}

/* Headers and SSE comments arrive, never a token. */
static void test_first_token_timeout(void **state)
{
    env *e = *state;
    submit_stream(e, "/sse-comments?n=100&gap=100", 10000, 600, 0, DATA_PROGRESS_ON_EVENT, 0);
    /* nothing at all, not even headers */
    submit_stream(e, "/slow", 10000, 600, 0, DATA_PROGRESS_ON_EVENT, 1);
    /* without on_data: headers only are no progress either */
    upstream_request *r = make_req(e, "/headers-only", 10000, MIB);
    r->first_token_timeout_ms = 600;
    submit_req(e, r, 2);
    assert_true(wait_completed(e, 3, 5000));
    for (int i = 0; i < 3; i++) {
        slot *s = &e->slots[i];
        assert_int_equal(s->transport, RF_TE_FIRST_TOKEN);
        assert_non_null(strstr(s->error, "no first token within 600 ms"));
        assert_true(s->latency_ms >= 590 && s->latency_ms < 1800);
        assert_int_equal(s->first_token_ms, -1);
        assert_int_equal(s->status, 0);
    }
    assert_true(e->slots[0].chunks >= 2);    /* the comments were handed over */
    assert_int_equal(e->slots[0].events, 0);
    assert_non_null(strstr(e->slots[1].error, "(no response yet)"));
    assert_null(strstr(e->slots[0].error, "(no response yet)"));
    /* each transfer was dropped, closing its connection */
    int64_t deadline = now_ms() + 2000;
    while (server_count(&e->srv, &e->srv.hangups) < 3 && now_ms() < deadline)
        sleep_ms(5);
    assert_int_equal(server_count(&e->srv, &e->srv.hangups), 3);
}

/* A few tokens, then silence (or only comments). */
static void test_stall_timeout(void **state)
{
    env *e = *state;
    submit_stream(e, "/sse-stall?n=3&gap=50", 10000, 3000, 500, DATA_PROGRESS_ON_EVENT, 0);
    submit_stream(e, "/sse-stall-comments?gap=100", 10000, 3000, 500, DATA_PROGRESS_ON_EVENT, 1);
    upstream_request *r = make_req(e, "/drip?n=3&gap=50", 10000, MIB);  /* no on_data */
    r->stall_timeout_ms = 500;
    submit_req(e, r, 2);
    assert_true(wait_completed(e, 3, 5000));
    for (int i = 0; i < 3; i++) {
        slot *s = &e->slots[i];
        assert_int_equal(s->transport, RF_TE_STALL);
        assert_true(s->first_token_ms >= 0 && s->first_token_ms < 1000);
        /* the silence began after the last token: at least 500 ms past the first one */
        assert_true(s->latency_ms >= s->first_token_ms + 495);
        assert_true(s->latency_ms < 3 * (500 + 100 + 200));
    }
    assert_non_null(strstr(e->slots[0].error, "stalled: no data for 500 ms"));
    assert_int_equal(e->slots[0].events, 3);
    /* comments kept bytes coming, but no token: still a stall */
    assert_non_null(strstr(e->slots[1].error, "stalled: no new token for 500 ms"));
    assert_true(e->slots[1].chunks >= 3);
    assert_non_null(strstr(e->slots[2].error, "stalled: no data for 500 ms"));
    assert_null(e->slots[2].body);
    assert_int_equal(e->slots[2].bytes_received, 3);
}

/* Tokens keep coming, but the whole attempt takes too long. */
static void test_whole_timeout_while_streaming(void **state)
{
    env *e = *state;
    submit_stream(e, "/sse?n=100&gap=50", 700, 3000, 3000, DATA_PROGRESS_ON_EVENT, 0);
    assert_true(wait_completed(e, 1, 5000));
    slot *s = &e->slots[0];
    assert_int_equal(s->transport, RF_TE_TIMEOUT);
    assert_non_null(strstr(s->error, "no complete answer within 700 ms"));
    assert_true(s->latency_ms >= 695 && s->latency_ms < 2100);
    assert_true(s->events >= 3);
    assert_true(s->first_token_ms >= 0);
}

static void test_abort_from_on_data(void **state)
{
    env *e = *state;
    e->slots[0].abort_at = 2;
    submit_stream(e, "/sse?n=10&gap=40", 10000, 3000, 2000, DATA_PROGRESS_ON_EVENT, 0);
    assert_true(wait_completed(e, 1, 5000));
    sleep_ms(200);  /* any late on_data call would show now */
    slot *s = &e->slots[0];
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->transport, RF_TE_ABORTED);
    assert_non_null(strstr(s->error, "aborted"));
    assert_int_equal(s->events, 2);          /* none after the ABORT */
    assert_int_equal(s->chunks_after_done, 0);
    assert_int_equal(s->status, 0);
    assert_true(wait_idle(e->up, 1000));
    int64_t deadline = now_ms() + 1000;      /* and the connection was closed */
    while (server_count(&e->srv, &e->srv.hangups) < 1 && now_ms() < deadline)
        sleep_ms(5);
    assert_int_equal(server_count(&e->srv, &e->srv.hangups), 1);
}

/* max_response caps a streamed body too: an endless stream is not taken for ever. */
static void test_stream_too_large(void **state)
{
    env *e = *state;
    upstream_request *r = make_req(e, "/sse?n=50&gap=5", 10000, 100);
    r->on_data = on_chunk;
    e->slots[0].mode = DATA_PROGRESS_ON_EVENT;
    submit_req(e, r, 0);
    assert_true(wait_completed(e, 1, 5000));
    slot *s = &e->slots[0];
    assert_int_equal(s->transport, RF_TE_TOO_LARGE);
    assert_non_null(strstr(s->error, "larger than 100 bytes"));
    assert_true(s->events >= 1);
    assert_true(s->stream_len <= 100);
    assert_null(s->body);
}

/* Cancelling a stream closes its connection: the provider sees the client go away. */
static void test_cancel_closes_the_connection(void **state)
{
    env *e = *state;
    long id = submit_stream(e, "/sse-hold", 30000, 0, 0, DATA_PROGRESS_ON_EVENT, 0);
    int64_t deadline = now_ms() + 3000;
    while (locked_int(e, &e->slots[0].events) < 1 && now_ms() < deadline)
        sleep_ms(5);
    assert_int_equal(locked_int(e, &e->slots[0].events), 1);
    int64_t streamed = upstream_bytes_received(e->up, id);
    assert_true(streamed >= (int64_t)strlen("data: {\"i\":1}\n\n"));
    assert_int_equal(server_count(&e->srv, &e->srv.hangups), 0);

    int64_t t0 = now_ms();
    assert_int_equal(upstream_cancel(e->up, id), streamed);
    while (server_count(&e->srv, &e->srv.hangups) < 1 && now_ms() - t0 < 1000)
        sleep_ms(2);
    assert_int_equal(server_count(&e->srv, &e->srv.hangups), 1);
    assert_true(now_ms() - t0 < 1000);
    int chunks = locked_int(e, &e->slots[0].chunks);
    sleep_ms(200);
    assert_int_equal(completed(e), 0);       /* done never runs after a cancel */
    assert_int_equal(locked_int(e, &e->slots[0].chunks), chunks);
    assert_true(wait_idle(e->up, 1000));
    assert_int_equal(upstream_cancel(e->up, id), -1);
}

/* A cancel from inside on_data (the loop thread) stops further chunks too. */
typedef struct self_cancel {
    env *env;
    atomic_long id;
    atomic_int chunks, after;
    atomic_int done;
} self_cancel;

static int cancel_self_on_data(const char *chunk, size_t len, long status, void *ud)
{
    self_cancel *c = ud;
    if (atomic_fetch_add(&c->chunks, 1) > 0)
        atomic_fetch_add(&c->after, 1);
    while (atomic_load(&c->id) == 0)
        sched_yield();  /* the submitter stores the id right after upstream_submit returns */
    upstream_cancel(c->env->up, atomic_load(&c->id));
    return UPSTREAM_DATA_PROGRESS;
}

static void self_cancel_done(upstream_result *res, void *ud)
{
    self_cancel *c = ud;
    atomic_store(&c->done, 1);
}

static void test_cancel_from_on_data(void **state)
{
    env *e = *state;
    self_cancel c = { .env = e };
    upstream_request *r = make_req(e, "/sse?n=10&gap=30", 10000, MIB);
    r->on_data = cancel_self_on_data;
    rf_err err;
    long id = upstream_submit(e->up, r, self_cancel_done, &c, &err);
    assert_true(id > 0);
    atomic_store(&c.id, id);
    int64_t deadline = now_ms() + 2000;
    while (atomic_load(&c.chunks) < 1 && now_ms() < deadline)
        sleep_ms(5);
    sleep_ms(500);
    assert_int_equal(atomic_load(&c.chunks), 1);
    assert_int_equal(atomic_load(&c.after), 0);
    assert_int_equal(atomic_load(&c.done), 0);
    assert_true(wait_idle(e->up, 1000));
}

static void test_reset_and_cut(void **state)
{
    env *e = *state;
    submit(e, "/close", 5000, MIB, 0);
    submit_stream(e, "/sse-cut", 5000, 3000, 2000, DATA_PROGRESS_ON_EVENT, 1);
    submit(e, "/reset", 5000, MIB, 2);
    assert_true(wait_completed(e, 3, 5000));
    assert_int_equal(e->slots[0].transport, RF_TE_RESET);
    assert_int_equal(e->slots[2].transport, RF_TE_RESET);
    assert_non_null(strstr(e->slots[2].error, "closed before any response"));
    assert_int_equal(e->slots[1].transport, RF_TE_TRUNCATED);
    assert_int_equal(e->slots[1].events, 1);  /* what came before the cut was handed over */
    assert_non_null(strstr(e->slots[1].error, "cut off"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(e->slots[i].status, 0);
}

/* TLS to a server that answers in plain text.  Alone: the first TLS set-up (loading the
 * CA store) is slow under valgrind and would hold up other transfers' deadlines. */
static void test_tls_failure(void **state)
{
    env *e = *state;
    upstream_request *r = make_req(e, "/ok", 20000, MIB);
    free(r->url);
    assert_true(asprintf(&r->url, "https://127.0.0.1:%d/ok", e->srv.port) > 0);
    r->api_key = strdup(TEST_KEY);
    submit_req(e, r, 0);
    assert_true(wait_completed(e, 1, 20000));
    assert_int_equal(e->slots[0].transport, RF_TE_TLS);
    assert_non_null(strstr(e->slots[0].error, "TLS"));
    assert_null(strstr(e->slots[0].error, TEST_KEY));
    assert_int_equal(e->slots[0].status, 0);
}

/* A non-2xx body is collected even with on_data set, for the caller to parse. */
static void test_error_body_with_on_data(void **state)
{
    env *e = *state;
    submit_stream(e, "/err500", 5000, 3000, 2000, DATA_PROGRESS_ON_EVENT, 0);
    submit_stream(e, "/retry", 5000, 3000, 2000, DATA_PROGRESS_ON_EVENT, 1);
    submit_stream(e, "/nope", 5000, 3000, 2000, DATA_PROGRESS_ON_EVENT, 2);
    assert_true(wait_completed(e, 3, 5000));
    slot *s = &e->slots[0];
    assert_int_equal(s->transport, RF_TE_NONE);
    assert_int_equal(s->status, 500);
    assert_string_equal(s->body, "{\"error\":{\"message\":\"boom\",\"code\":500}}");
    assert_int_equal(s->data_status, 500);   /* on_data saw it too, with its status */
    assert_string_equal(s->stream, s->body);
    assert_true(s->first_token_ms >= 0);      /* an error body is progress */
    assert_int_equal(e->slots[1].status, 429);
    assert_int_equal(e->slots[1].retry_after_ms, 3000);
    assert_non_null(strstr(e->slots[1].body, "slow down"));
    assert_int_equal(e->slots[2].status, 404);
    assert_null(e->slots[2].body);            /* empty */
    assert_int_equal(e->slots[2].chunks, 0);
}

/* The key never reaches on_data, even cut across two chunks; a tail held back because
 * it might have been the start of the key is handed over at the end. */
static void test_key_scrubbed_from_stream(void **state)
{
    env *e = *state;
    upstream_request *r = make_req(e, "/sse-key", 5000, MIB);
    r->api_key = strdup(TEST_KEY);
    r->on_data = on_chunk;
    e->slots[0].mode = DATA_PROGRESS_ON_EVENT;
    submit_req(e, r, 0);
    r = make_req(e, "/sse-keytail", 5000, MIB);
    r->api_key = strdup(TEST_KEY);
    r->on_data = on_chunk;
    submit_req(e, r, 1);
    assert_true(wait_completed(e, 2, 5000));
    slot *s = &e->slots[0];
    assert_int_equal(s->transport, RF_TE_NONE);
    assert_true(s->chunks >= 2);
    assert_null(strstr(s->stream, "secret-123"));
    assert_null(strstr(s->stream, "sk-test-secret"));
    assert_non_null(strstr(s->stream, "data: {\"said\":\"abc [REDACTED] def\"}\n\n"));
    assert_non_null(strstr(s->stream, "data: [DONE]\n\n"));
    s = &e->slots[1];
    assert_int_equal(s->transport, RF_TE_NONE);
    assert_string_equal(s->stream, "data: {\"i\":1}\n\nx sk-te");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_token_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_timeout_while_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_from_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_closes_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_and_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_body_with_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_scrubbed_from_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
