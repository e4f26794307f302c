/* test_shared_limits.c — shared.c provider limits and breakers against a real
 * redis-server (cmocka): the GCRA rate limiter across two hosts (the booked schedule
 * never holds more than rpm sends in any 60 s), in-flight slots with leases (a dead host's
 * slot expires), breakers published by one host seen by the other within
 * breaker_sync_ms, probe claims granted to exactly one host; and the measurements:
 * round trips per reservation + settle, reserve latency p50/p99 on loopback, throughput.
 *
 * Every test starts its own redis-server (shared_test.h) and stops it in teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "shared_test.h"
#include "shared_impl.h"                /* the scripts' texts, to run them bare */

static test_redis g_r;

static int setup(void **state)
{
    (void)state;
    memset(&g_r, 0, sizeof g_r);
    redis_start(&g_r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    redis_stop(&g_r);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- rate ---- */

#define BURST 300
#define RPM 120

static void test_rate_two_hosts(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "r1");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    static result res[BURST];
    rf_err err;
    int64_t t0 = now_us();
    for (int i = 0; i < BURST; i++) {
        res[i] = (result)RESULT_INIT;
        assert_int_equal(shared_rate_acquire(i % 2 ? b : a, "or:prov", RPM, on_rate, &res[i],
                                             &err), 0);
    }
    int64_t send_at[BURST];
    long max_wait = 0;
    for (int i = 0; i < BURST; i++) {
        assert_true(result_wait(&res[i], WAIT_MS));
        assert_int_equal(res[i].status, 0);
        assert_int_equal(res[i].calls, 1);
        send_at[i] = res[i].at_us + res[i].wait_ms * 1000;   /* when the caller sends */
        if (res[i].wait_ms > max_wait)
            max_wait = res[i].wait_ms;
        result_destroy(&res[i]);
    }
    int64_t took = now_us() - t0;
    qsort(send_at, BURST, sizeof *send_at, cmp_i64);
    /* Every 120 consecutive sends span at least 60 s, so no 60 s window holds more than
     * 120; the slack covers the callbacks' delivery jitter (the bookings themselves are
     * exact: checked on the key below). */
    const int64_t slack_us = under_valgrind() ? 200000 : 20000;
    int64_t min_window = INT64_MAX, min_gap = INT64_MAX;
    for (int i = 0; i + RPM < BURST; i++) {
        int64_t w = send_at[i + RPM] - send_at[i];
        if (w < min_window)
            min_window = w;
    }
    for (int i = 0; i + 1 < BURST; i++)
        if (send_at[i + 1] - send_at[i] < min_gap)
            min_gap = send_at[i + 1] - send_at[i];
    print_message("rate: %d bookings at rpm %d from two hosts in %lld ms; schedule %.3f s; "
                  "min span of %d+1 sends %.3f s; min gap %.1f ms\n", BURST, RPM,
                  (long long)took / 1000, (send_at[BURST - 1] - send_at[0]) / 1e6, RPM,
                  min_window / 1e6, min_gap / 1e3);
    assert_true(min_window >= 60000000 - slack_us);
    assert_true(min_gap >= 500000 - slack_us);
    /* the whole burst spread evenly: 299 gaps of 500 ms */
    assert_true(send_at[BURST - 1] - send_at[0] >= 299LL * 500000 - slack_us);
    assert_true(max_wait >= 299L * 500 - took / 1000 - 5 && max_wait <= 299L * 500 + 1);

    /* the key: exactly BURST intervals booked after the first slot */
    redisContext *c = redis_client(&g_r);
    long long tat = redis_int(c, "GET r1:rate:or%%3Aprov");
    long long pttl = redis_int(c, "PTTL r1:rate:or%%3Aprov");
    assert_true(tat > 0);
    assert_true(pttl > 299LL * 500 && pttl < 301LL * 500 + 2000);
    redisFree(c);

    /* other providers have their own limiter */
    result r = RESULT_INIT;
    assert_int_equal(shared_rate_acquire(a, "other", RPM, on_rate, &r, &err), 0);
    assert_true(result_wait(&r, WAIT_MS));
    assert_int_equal(r.wait_ms, 0);
    result_destroy(&r);
    assert_int_equal(shared_rate_acquire(a, "x", 0, on_rate, &r, &err), -1);
    assert_int_equal(shared_rate_acquire(a, "", 10, on_rate, &r, &err), -1);
    assert_int_equal(shared_rate_acquire(a, "a\nb", 10, on_rate, &r, &err), -1);
    shared_stop(a);
    shared_stop(b);
}

/* The rate script itself, from two raw connections: booked slots (server µs) are at
 * least one interval apart, ceil(60e6 / rpm) — exactly one when there is a backlog — so
 * even an rpm that does not divide a minute never fits rpm + 1 sends into 60 s. */
static void rate_script_exact(int rpm, int n)
{
    redisContext *c[2] = {redis_client(&g_r), redis_client(&g_r)};
    assert_non_null(c[0]);
    assert_non_null(c[1]);
    long long interval = (60000000LL + rpm - 1) / rpm;
    const char *text = shared_lua_text(LUA_RATE);
    long long prev = -1, first = -1;
    char key[32];
    snprintf(key, sizeof key, "exact:%d", rpm);
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommand(c[i % 2], "EVAL %s 1 %s %lld", text, key, interval);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 2);
        long long wait = r->element[0]->integer, slot = r->element[1]->integer;
        freeReplyObject(r);
        assert_true(wait >= 0);
        if (prev >= 0 && wait > 0)             /* backlogged: right after the previous */
            assert_int_equal(slot - prev, interval);
        else if (prev >= 0)                     /* idle: now, which is later still */
            assert_true(slot - prev >= interval);
        else
            first = slot;
        prev = slot;
    }
    /* so any rpm + 1 consecutive slots span at least a minute */
    assert_true((prev - first) / (n - 1) * rpm >= 60000000LL);
    redisFree(c[0]);
    redisFree(c[1]);
}

static void test_rate_script_exact(void **state)
{
    (void)state;
    rate_script_exact(120, 300);
    rate_script_exact(7, 30);
    rate_script_exact(1000000, 300);
}

/* Sends really made at the booked times at a high rate, from both hosts. */
static void test_rate_spacing_real_time(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "r2");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    const int n = 60, rpm = 6000;                    /* one every 10 ms */
    int64_t sent[60];
    rf_err err;
    for (int i = 0; i < n; i++) {
        result r = RESULT_INIT;
        assert_int_equal(shared_rate_acquire(i % 3 ? b : a, "p", rpm, on_rate, &r, &err), 0);
        assert_true(result_wait(&r, WAIT_MS));
        assert_int_equal(r.status, 0);
        sleep_ms(r.wait_ms);
        sent[i] = now_us();
        result_destroy(&r);
    }
    /* k intervals apart at least, give or take one send's lateness (sleep jitter) */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            assert_true(sent[j] - sent[i] >= (j - i) * 10000LL - 10000);
    print_message("rate: %d sends at rpm %d took %.3f s (ideal %.3f s)\n", n, rpm,
                  (sent[n - 1] - sent[0]) / 1e6, (n - 1) * 0.01);
    shared_stop(a);
    shared_stop(b);
}

/* ---- slots ---- */

static int slot(shared *s, const char *prov, int max, long lease, char *id, long *retry)
{
    result r = RESULT_INIT;
    rf_err err;
    if (shared_slot_acquire(s, prov, max, lease, on_slot, &r, &err) < 0)
        fail_msg("shared_slot_acquire: %s", err.msg);
    assert_true(result_wait(&r, WAIT_MS));
    if (id)
        snprintf(id, SHARED_ID_MAX, "%s", r.id);
    if (retry)
        *retry = r.retry_ms;
    result_destroy(&r);
    return r.status;
}

/* Poll until the zset key has n members (requests through another host are applied in
 * their own order). */
static void wait_zcard(redisContext *c, const char *key, long long n)
{
    int64_t end = now_us() + 1000000;
    while (redis_int(c, "ZCARD %s", key) != n && now_us() < end)
        sleep_ms(2);
    assert_int_equal(redis_int(c, "ZCARD %s", key), n);
}

static void test_slots_across_hosts(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "s1");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    char l1[SHARED_ID_MAX], l2[SHARED_ID_MAX], l3[SHARED_ID_MAX];
    long retry;
    rf_err err;
    assert_int_equal(slot(a, "p", 3, 60000, l1, NULL), 0);
    assert_int_equal(slot(a, "p", 3, 60000, l2, NULL), 0);
    assert_int_equal(slot(b, "p", 3, 60000, l3, NULL), 0);
    assert_int_equal(slot(b, "p", 3, 60000, NULL, &retry), EAGAIN);
    assert_true(retry > 59000 && retry <= 60000);
    assert_int_equal(slot(a, "q", 3, 60000, NULL, NULL), 0);   /* per provider */
    redisContext *c = redis_client(&g_r);
    assert_int_equal(shared_slot_release(a, "p", l1, &err), 0);
    wait_zcard(c, "s1:slots:p", 2);
    char l4[SHARED_ID_MAX];
    assert_int_equal(slot(b, "p", 3, 60000, l4, NULL), 0);
    assert_int_equal(slot(a, "p", 3, 60000, NULL, NULL), EAGAIN);

    /* host b dies holding two slots with short leases: they come back after the lease */
    assert_int_equal(shared_slot_release(b, "p", l3, &err), 0);
    assert_int_equal(shared_slot_release(b, "p", l4, &err), 0);
    wait_zcard(c, "s1:slots:p", 1);
    assert_int_equal(slot(b, "p", 3, 400, NULL, NULL), 0);
    assert_int_equal(slot(b, "p", 3, 400, NULL, NULL), 0);
    int64_t t0 = now_us();
    shared_stop(b);
    assert_int_equal(slot(a, "p", 3, 60000, NULL, &retry), EAGAIN);
    assert_true(retry <= 400);
    int64_t freed = 0;
    while (now_us() - t0 < 2000000) {
        if (slot(a, "p", 3, 60000, NULL, NULL) == 0) {
            freed = now_us() - t0;
            break;
        }
        sleep_ms(10);
    }
    print_message("slots: a dead host's lease (400 ms) came back after %lld ms\n",
                  (long long)freed / 1000);
    assert_true(freed > 250000 && freed < 900000);
    redisFree(c);
    shared_stop(a);
}

typedef struct slot_race {
    shared *s;
    int granted;
} slot_race;

static void *slot_race_main(void *arg)
{
    slot_race *r = arg;
    for (int i = 0; i < 20; i++)
        if (slot(r->s, "race", 5, 60000, NULL, NULL) == 0)
            r->granted++;
    return NULL;
}

static void test_slots_concurrent_exact(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "s2");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    slot_race r[4] = {{a, 0}, {b, 0}, {a, 0}, {b, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, slot_race_main, &r[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(r[0].granted + r[1].granted + r[2].granted + r[3].granted, 5);
    shared_stop(a);
    shared_stop(b);
}

/* ---- breakers ---- */

static int64_t wait_open(shared *s, const char *p, const char *m, int want, long ms)
{
    int64_t t0 = now_us();
    while (now_us() - t0 < ms * 1000) {
        if (shared_breaker_open(s, p, m, NULL) == want)
            return now_us() - t0;
        sleep_ms(1);
    }
    return -1;
}

static void test_breaker_seen_by_other_host(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "b1");
    cfg.breaker_sync_ms = 200;
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    rf_err err;
    const char *model = "meta/llama:free|x";
    int64_t until = wall_ms() + 5000, got;
    assert_false(shared_breaker_open(b, "or:1", NULL, NULL));
    assert_int_equal(shared_breaker_publish(a, "or:1", NULL, 1, until, "HTTP 503\nupstream",
                                            &err), 0);
    assert_true(shared_breaker_open(a, "or:1", NULL, &got));     /* at once on its host */
    assert_int_equal(got, until);
    int64_t seen = wait_open(b, "or:1", NULL, 1, 1000);
    print_message("breaker opened by host a seen by host b after %lld ms (sync %ld ms)\n",
                  (long long)seen / 1000, cfg.breaker_sync_ms);
    assert_true(seen >= 0);
    assert_true(seen <= (cfg.breaker_sync_ms + 150) * 1000);
    assert_true(shared_breaker_open(b, "or:1", NULL, &got));
    assert_true(got > until - 100 && got < until + 100);         /* the same end */
    /* the model's breaker is its own */
    assert_false(shared_breaker_open(b, "or:1", model, NULL));
    assert_int_equal(shared_breaker_publish(b, "or:1", model, 1, wall_ms() + 5000, "404",
                                            &err), 0);
    assert_true(wait_open(a, "or:1", model, 1, 1000) >= 0);
    shared_breaker_info list[4];
    assert_int_equal(shared_breaker_list(a, list, 4), 2);
    int m = strcmp(list[0].model, "") == 0 ? 1 : 0;
    assert_string_equal(list[m].provider, "or:1");
    assert_string_equal(list[m].model, model);
    assert_string_equal(list[m].host, "host-b");
    assert_string_equal(list[m].reason, "404");
    assert_string_equal(list[1 - m].host, "host-a");
    assert_string_equal(list[1 - m].reason, "HTTP 503 upstream");
    assert_int_equal(shared_breaker_list(a, list, 0), 2);

    /* closing is seen too */
    assert_int_equal(shared_breaker_publish(a, "or:1", NULL, 0, 0, NULL, &err), 0);
    assert_false(shared_breaker_open(a, "or:1", NULL, NULL));
    seen = wait_open(b, "or:1", NULL, 0, 1000);
    assert_true(seen >= 0 && seen <= (cfg.breaker_sync_ms + 150) * 1000);
    assert_true(shared_breaker_open(b, "or:1", model, NULL));
    /* an open breaker ends by itself */
    assert_int_equal(shared_breaker_publish(a, "p2", NULL, 1, wall_ms() + 300, "x", &err), 0);
    assert_true(wait_open(b, "p2", NULL, 1, 1000) >= 0);
    assert_true(wait_open(b, "p2", NULL, 0, 1000) >= 0);
    /* on a too, though not at the same instant: each host moves a synced end to its own
     * clock by the sync's round trip (cache_replace), so a's copy can end a few ms after
     * b's under load */
    assert_true(wait_open(a, "p2", NULL, 0, 500) >= 0);
    /* one already over is not even sent */
    assert_int_equal(shared_breaker_publish(a, "p3", NULL, 1, wall_ms() - 1, "x", &err), 0);
    assert_int_equal(shared_breaker_publish(a, "", NULL, 1, wall_ms(), "x", &err), -1);
    shared_stop(a);
    shared_stop(b);
}

/* Breaker entries that another (older, buggy) host or a person wrote and that do not
 * parse are skipped; the rest still count. */
static void test_breaker_tampered_entries_skipped(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "b2");
    shared *a = start_ok(&cfg, "host-a");
    redisContext *c = redis_client(&g_r);
    redis_ok(c, "HSET b2:brk bad%%ZZ 1|99999999999999|1|h|r");
    redis_ok(c, "HSET b2:brk good garbage");
    char value[100];
    snprintf(value, sizeof value, "1|%lld|1|other-host|by hand", (long long)wall_ms() + 60000);
    redis_ok(c, "HSET b2:brk p9 %s", value);
    assert_true(wait_open(a, "p9", NULL, 1, 1000) >= 0);
    assert_false(shared_breaker_open(a, "good", NULL, NULL));
    shared_breaker_info list[4];
    assert_int_equal(shared_breaker_list(a, list, 4), 1);
    assert_string_equal(list[0].host, "other-host");
    shared_health_info h;
    shared_health(a, &h);
    assert_int_equal(h.state, SHARED_CONNECTED);
    /* "garbage" was deleted by the sync; the undecodable field is kept but ignored */
    sleep_ms(300);
    assert_int_equal(redis_int(c, "HEXISTS b2:brk good"), 0);
    redisFree(c);
    shared_stop(a);
}

/* ---- probes ---- */

static void test_probe_claimed_by_one(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "p1");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    rf_err err;
    for (int round = 0; round < 50; round++) {
        char prov[32];
        snprintf(prov, sizeof prov, "prov%d", round);
        result ra = RESULT_INIT, rb = RESULT_INIT;
        assert_int_equal(shared_probe_claim(a, prov, "m", 10000, on_probe, &ra, &err), 0);
        assert_int_equal(shared_probe_claim(b, prov, "m", 10000, on_probe, &rb, &err), 0);
        assert_true(result_wait(&ra, WAIT_MS));
        assert_true(result_wait(&rb, WAIT_MS));
        assert_int_equal(ra.status, 0);
        assert_int_equal(rb.status, 0);
        assert_int_equal(ra.granted + rb.granted, 1);
        result_destroy(&ra);
        result_destroy(&rb);
    }
    /* the holder gives it back: the other may claim it; a non-holder cannot release it */
    result r = RESULT_INIT;
    assert_int_equal(shared_probe_claim(a, "x", NULL, 10000, on_probe, &r, &err), 0);
    assert_true(result_wait(&r, WAIT_MS));
    assert_int_equal(r.granted, 1);
    result_destroy(&r);
    assert_int_equal(shared_probe_release(b, "x", NULL, &err), 0);   /* not b's */
    r = (result)RESULT_INIT;
    assert_int_equal(shared_probe_claim(b, "x", NULL, 10000, on_probe, &r, &err), 0);
    assert_true(result_wait(&r, WAIT_MS));
    assert_int_equal(r.granted, 0);
    result_destroy(&r);
    assert_int_equal(shared_probe_release(a, "x", NULL, &err), 0);
    redisContext *c = redis_client(&g_r);           /* applied through a's connection */
    int64_t end = now_us() + 1000000;
    while (redis_int(c, "EXISTS p1:probe:x") && now_us() < end)
        sleep_ms(2);
    redisFree(c);
    r = (result)RESULT_INIT;
    assert_int_equal(shared_probe_claim(b, "x", NULL, 10000, on_probe, &r, &err), 0);
    assert_true(result_wait(&r, WAIT_MS));
    assert_int_equal(r.granted, 1);
    result_destroy(&r);
    /* a lease runs out by itself */
    r = (result)RESULT_INIT;
    assert_int_equal(shared_probe_claim(a, "y", NULL, 200, on_probe, &r, &err), 0);
    assert_true(result_wait(&r, WAIT_MS));
    assert_int_equal(r.granted, 1);
    result_destroy(&r);
    sleep_ms(300);
    r = (result)RESULT_INIT;
    assert_int_equal(shared_probe_claim(b, "y", NULL, 200, on_probe, &r, &err), 0);
    assert_true(result_wait(&r, WAIT_MS));
    assert_int_equal(r.granted, 1);
    result_destroy(&r);
    shared_stop(a);
    shared_stop(b);
}

/* ---- measurements ---- */

#define PAIRS 2000

static void test_measure_latency_round_trips(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "m1");
    cfg.breaker_sync_ms = 60000;                     /* no sync ticks in the counts */
    shared *s = start_ok(&cfg, "host-a");
    shared_caps caps = {0};
    rf_err err;
    assert_int_equal(shared_caps_standard(&caps, wall_ms(), USD(1e6), USD(1e6), "fast",
                                          USD(1e6), &err), 0);
    char id[SHARED_ID_MAX];
    assert_int_equal(do_reserve(s, &caps, 1, id, NULL), 0);    /* warm up */
    assert_int_equal(do_settle(s, id, 1, &caps), 0);
    shared_health_info h0, h1;
    shared_health(s, &h0);
    int pairs = under_valgrind() ? 200 : PAIRS;
    static int64_t lat[PAIRS];
    int64_t t0 = now_us();
    for (int i = 0; i < pairs; i++) {
        int64_t t = now_us();
        assert_int_equal(do_reserve(s, &caps, 1000, id, NULL), 0);
        lat[i] = now_us() - t;
        assert_int_equal(do_settle(s, id, 900, &caps), 0);
    }
    int64_t took = now_us() - t0;
    shared_health(s, &h1);
    qsort(lat, (size_t)pairs, sizeof *lat, cmp_i64);
    double rt = (double)(h1.round_trips - h0.round_trips) / pairs;
    print_message("reserve+settle (3 windows), sequential: %.2f round trips per pair; "
                  "reserve latency p50 %lld us, p99 %lld us, max %lld us; %.0f pairs/s; "
                  "batch RTT p50 %ld us\n", rt, (long long)lat[pairs / 2],
                  (long long)lat[pairs * 99 / 100], (long long)lat[pairs - 1],
                  pairs / (took / 1e6), h1.rtt_p50_us);
    assert_true(rt >= 2.0 && rt <= 2.01);
    if (!under_valgrind())
        assert_true(lat[pairs / 2] < 1000);          /* target: p50 under 1 ms */
    redisContext *c = redis_client(&g_r);
    assert_int_equal(redis_int(c, "HGET m1:win:%s spent", caps.w[0].key), 1 + 900LL * pairs);
    redisFree(c);
    shared_stop(s);
}

typedef struct pump {
    shared *s;
    shared_caps caps;
    int n;
} pump;

static void *pump_main(void *arg)
{
    pump *p = arg;
    char id[SHARED_ID_MAX];
    for (int i = 0; i < p->n; i++) {
        assert_int_equal(do_reserve(p->s, &p->caps, 10, id, NULL), 0);
        assert_int_equal(do_settle(p->s, id, 10, &p->caps), 0);
    }
    return NULL;
}

static void test_measure_throughput(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "m2");
    cfg.breaker_sync_ms = 60000;
    shared *s = start_ok(&cfg, "host-a");
    enum { THREADS = 16 };
    int per = under_valgrind() ? 20 : 500;
    pump p[THREADS];
    pthread_t t[THREADS];
    shared_health_info h0, h1;
    shared_health(s, &h0);
    int64_t t0 = now_us();
    for (int i = 0; i < THREADS; i++) {
        p[i] = (pump){s, one_cap(USD(1e6)), per};
        assert_int_equal(pthread_create(&t[i], NULL, pump_main, &p[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    double secs = (now_us() - t0) / 1e6;
    shared_health(s, &h1);
    uint64_t ops = 2ULL * THREADS * (uint64_t)per;
    print_message("throughput: %d threads, %llu requests in %.2f s = %.0f requests/s; "
                  "%.2f requests per round trip (pipelining)\n", THREADS,
                  (unsigned long long)ops, secs, ops / secs,
                  (double)(h1.commands - h0.commands) / (double)(h1.round_trips - h0.round_trips));
    redisContext *c = redis_client(&g_r);
    assert_int_equal(redis_int(c, "HGET m2:win:day:test spent"), 10LL * THREADS * per);
    redisFree(c);
    shared_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rate_two_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_script_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_spacing_real_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots_across_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots_concurrent_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_seen_by_other_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_tampered_entries_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_claimed_by_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_measure_latency_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_measure_throughput, setup, teardown),
    };
    if (getenv("RFS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("RFS_TEST_FILTER"));
    return cmocka_run_group_tests_name("shared_limits", tests, NULL, NULL);
}
