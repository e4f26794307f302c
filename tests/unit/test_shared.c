/* test_shared.c — shared.c budget windows against a real redis-server (cmocka): caps
 * across two hosts under concurrency, EAGAIN vs EDQUOT and their messages, TTL expiry of
 * a dead host's reservation, settles after expiry and twice, the spend cache, floors,
 * and the failure modes: Redis killed and restarted (deferred settles, reseeding),
 * Redis stalled, out of memory (degraded), NOSCRIPT, a wrong password, bad settings.
 *
 * Every test starts its own redis-server (shared_test.h) and stops it in teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "shared_test.h"

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

/* ---- caps and messages ---- */

static void test_reserve_settle_release(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t1");
    shared *s = start_ok(&cfg, "host-a");
    redisContext *c = redis_client(&g_r);
    assert_non_null(c);
    shared_caps caps = one_cap(USD(1.00));
    char id[SHARED_ID_MAX], id2[SHARED_ID_MAX], msg[512];

    assert_int_equal(do_reserve(s, &caps, USD(0.40), id, msg), 0);
    assert_string_equal(msg, "");
    assert_true(strncmp(id, "host-a/", 7) == 0);
    assert_int_equal(redis_int(c, "HGET t1:win:day:test reserved"), USD(0.40));
    assert_int_equal(redis_int(c, "ZCARD t1:win:day:test:exp"), 1);
    assert_int_equal(do_reserve(s, &caps, USD(0.50), id2, NULL), 0);
    assert_string_not_equal(id, id2);
    assert_int_equal(redis_int(c, "HGET t1:win:day:test reserved"), USD(0.90));

    /* settle: the real cost replaces the reservation, per host too */
    assert_int_equal(do_settle(s, id, USD(0.25), &caps), 0);
    assert_int_equal(redis_int(c, "HGET t1:win:day:test spent"), USD(0.25));
    assert_int_equal(redis_int(c, "HGET t1:win:day:test h:host-a"), USD(0.25));
    assert_int_equal(redis_int(c, "HGET t1:win:day:test reserved"), USD(0.50));
    /* the same id again is not charged twice */
    assert_int_equal(do_settle(s, id, USD(0.25), &caps), 0);
    assert_int_equal(redis_int(c, "HGET t1:win:day:test spent"), USD(0.25));

    assert_int_equal(do_release(s, id2), 0);
    assert_int_equal(redis_int(c, "HGET t1:win:day:test reserved"), 0);
    assert_int_equal(redis_int(c, "ZCARD t1:win:day:test:exp"), 0);
    assert_int_equal(redis_int(c, "HLEN t1:win:day:test:amt"), 0);
    assert_int_equal(do_release(s, id2), 0);          /* unknown now: fine */
    assert_int_equal(do_release(s, "never/seen/1"), 0);

    /* the cache has what the replies said */
    shared_spend_info sp;
    shared_spend(s, &caps, &sp);
    assert_int_equal(sp.n, 1);
    assert_true(sp.w[0].known);
    assert_int_equal(sp.w[0].spent_nusd, USD(0.25));
    assert_int_equal(sp.w[0].reserved_nusd, 0);
    assert_int_equal(sp.w[0].host_nusd, USD(0.25));

    /* settle without a reservation (spend made while Redis was down) */
    assert_int_equal(do_settle(s, NULL, USD(0.10), &caps), 0);
    assert_int_equal(redis_int(c, "HGET t1:win:day:test spent"), USD(0.35));
    /* every window key expires some day */
    assert_true(redis_int(c, "PTTL t1:win:day:test") > 86400000LL * 300);
    redisFree(c);
    shared_stop(s);
}

static void test_eagain_edquot_messages(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t2");
    shared *s = start_ok(&cfg, "host-a");
    shared_caps caps = {0};
    rf_err err;
    assert_int_equal(shared_caps_standard(&caps, wall_ms(), USD(5), USD(100), "fast",
                                          USD(0.5), &err), 0);
    assert_int_equal(caps.n, 3);
    assert_true(strncmp(caps.w[0].key, "day:", 4) == 0);
    assert_true(strncmp(caps.w[1].key, "month:", 6) == 0);
    assert_true(strncmp(caps.w[2].key, "tier:fast:day:", 14) == 0);
    char id[SHARED_ID_MAX], msg[512];

    assert_int_equal(do_settle(s, NULL, USD(4.97), &caps), 0);
    /* the tier cap first: $0.50, nothing spent there yet... the settle charged it too */
    assert_int_equal(do_reserve(s, &caps, USD(0.01), id, msg), EDQUOT);
    assert_string_equal(msg, "tier fast daily cap $0.5000 reached: $4.9700 spent, "
                             "$0.0000 reserved (all hosts)");

    /* without the tier window: the daily cap decides */
    caps.n = 2;
    assert_int_equal(do_reserve(s, &caps, USD(0.02), id, msg), 0);
    assert_int_equal(do_reserve(s, &caps, USD(0.02), NULL, msg), EAGAIN);
    assert_string_equal(msg, "daily cap $5.00 reached: $4.97 spent, $0.02 reserved (all hosts)");
    assert_int_equal(do_reserve(s, &caps, USD(0.04), NULL, msg), EDQUOT);
    assert_string_equal(msg, "daily cap $5.00 reached: $4.97 spent, $0.02 reserved (all hosts)");
    /* 0 always fits */
    assert_int_equal(do_reserve(s, &caps, 0, NULL, msg), 0);
    /* once the reservation is released the same request fits */
    assert_int_equal(do_release(s, id), 0);
    assert_int_equal(do_reserve(s, &caps, USD(0.02), NULL, NULL), 0);

    /* EDQUOT outranks EAGAIN across windows: month at EAGAIN, day at EDQUOT */
    shared_caps two = {0};
    assert_int_equal(shared_caps_add(&two, "month:x", "monthly cap", USD(1), &err), 0);
    assert_int_equal(shared_caps_add(&two, "day:x", "daily cap", USD(0.5), &err), 0);
    assert_int_equal(do_reserve(s, &two, USD(0.45), id, NULL), 0);
    assert_int_equal(do_settle(s, id, USD(0.45), &two), 0);     /* spent .45 in both */
    shared_caps month_only = two;
    month_only.n = 1;
    assert_int_equal(do_reserve(s, &month_only, USD(0.5), NULL, NULL), 0); /* month .95 held */
    assert_int_equal(do_reserve(s, &two, USD(0.10), NULL, msg), EDQUOT);
    assert_string_equal(msg, "daily cap $0.5000 reached: $0.4500 spent, $0.0000 reserved "
                             "(all hosts)");
    /* no cap: tracked, never refused */
    shared_caps none = one_cap(-1);
    assert_int_equal(do_reserve(s, &none, USD(1000), NULL, NULL), 0);
    shared_stop(s);
}

/* Shared caps and bad arguments are refused before anything is queued. */
static void test_bad_arguments(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t3");
    shared *s = start_ok(&cfg, "host-a");
    rf_err err;
    shared_caps caps = {0};
    assert_int_equal(shared_caps_add(&caps, "bad key", "x", 1, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(shared_caps_add(&caps, "", "x", 1, &err), -1);
    assert_int_equal(shared_caps_add(&caps, "day:1", "x", SHARED_NUSD_MAX + 1, &err), -1);
    assert_int_equal(shared_caps_add(&caps, "day:1", "x", 1, &err), 0);
    assert_int_equal(shared_caps_add(&caps, "day:1", "x", 1, &err), -1);   /* twice */
    assert_int_equal(shared_reserve(s, &caps, -1, on_reserve, NULL, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(shared_reserve(s, &caps, SHARED_NUSD_MAX + 1, on_reserve, NULL, &err), -1);
    shared_caps empty = {0};
    assert_int_equal(shared_reserve(s, &empty, 1, on_reserve, NULL, &err), -1);
    assert_int_equal(shared_settle(s, "has space", 1, &caps, NULL, NULL, &err), -1);
    assert_int_equal(shared_release(s, "", NULL, NULL, &err), -1);
    assert_int_equal(shared_release(s, NULL, NULL, NULL, &err), -1);
    assert_int_equal(shared_host_spent(s, "x y", 1, &err), -1);
    /* a tier name is escaped into the window, so odd names are fine */
    assert_int_equal(shared_caps_standard(&caps, 0, 1, 1, "a:b c|d", 1, &err), 0);
    assert_string_equal(caps.w[0].key, "day:1970-01-01");
    assert_string_equal(caps.w[1].key, "month:1970-01");
    assert_string_equal(caps.w[2].key, "tier:a%3Ab%20c%7Cd:day:1970-01-01");
    assert_string_equal(caps.w[2].label, "tier a:b c|d daily cap");
    shared_stop(s);
}

/* ---- two hosts, many threads, one cap ---- */

#define HOST_THREADS 4
#define ITERATIONS 200

typedef struct hammer {
    shared *s;
    unsigned seed;
    shared_caps caps;
    int64_t cap;
    int64_t *held;              /* test view of reserved + spent, all threads (atomic) */
    int64_t *settled;           /* sum of actual costs settled (atomic) */
    int *violations, *edquot, *eagain, *ok;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    char id[SHARED_ID_MAX];
    for (int i = 0; i < ITERATIONS; i++) {
        int64_t amount = 1000000 + (int64_t)(rand_r(&h->seed) % 49) * 1000000;  /* $.001-.05 */
        int st = do_reserve(h->s, &h->caps, amount, id, NULL);
        if (st == EDQUOT) {
            __atomic_add_fetch(h->edquot, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        if (st == EAGAIN) {
            __atomic_add_fetch(h->eagain, 1, __ATOMIC_SEQ_CST);
            sleep_ms(1);
            continue;
        }
        assert_int_equal(st, 0);
        __atomic_add_fetch(h->ok, 1, __ATOMIC_SEQ_CST);
        /* Incremented after Redis granted it and decremented before Redis gives it back:
         * never above the truth, so above the cap only if Redis overshot. */
        if (__atomic_add_fetch(h->held, amount, __ATOMIC_SEQ_CST) > h->cap)
            __atomic_add_fetch(h->violations, 1, __ATOMIC_SEQ_CST);
        if (rand_r(&h->seed) % 2)
            sleep_ms(1);                       /* a request in flight for a while */
        if (rand_r(&h->seed) % 2) {
            int64_t actual = amount / 2 + rand_r(&h->seed) % (amount / 2 + 1);  /* <= amount */
            __atomic_sub_fetch(h->held, amount - actual, __ATOMIC_SEQ_CST);
            assert_int_equal(do_settle(h->s, id, actual, &h->caps), 0);
            __atomic_add_fetch(h->settled, actual, __ATOMIC_SEQ_CST);
        } else {
            __atomic_sub_fetch(h->held, amount, __ATOMIC_SEQ_CST);
            assert_int_equal(do_release(h->s, id), 0);
        }
    }
    return NULL;
}

static void test_two_hosts_never_exceed_cap(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t4");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    int64_t cap = USD(3.00), held = 0, settled = 0;
    int violations = 0, edquot = 0, eagain = 0, ok = 0;
    hammer h[2 * HOST_THREADS];
    pthread_t t[2 * HOST_THREADS];
    for (int i = 0; i < 2 * HOST_THREADS; i++) {
        h[i] = (hammer){ .s = i % 2 ? b : a, .seed = 1234u + (unsigned)i, .caps = one_cap(cap),
                         .cap = cap, .held = &held, .settled = &settled,
                         .violations = &violations, .edquot = &edquot, .eagain = &eagain,
                         .ok = &ok };
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 2 * HOST_THREADS; i++)
        pthread_join(t[i], NULL);

    redisContext *c = redis_client(&g_r);
    assert_non_null(c);
    long long spent = redis_int(c, "HGET t4:win:day:test spent");
    long long ha = redis_int(c, "HGET t4:win:day:test h:host-a");
    long long hb = redis_int(c, "HGET t4:win:day:test h:host-b");
    print_message("two hosts x %d threads: %d reserved, %d EAGAIN, %d EDQUOT; spent $%.4f "
                  "of $%.2f (host-a $%.4f, host-b $%.4f)\n", HOST_THREADS, ok, eagain, edquot,
                  spent / 1e9, cap / 1e9, ha / 1e9, hb / 1e9);
    assert_int_equal(violations, 0);
    assert_int_equal(spent, settled);           /* every settle counted exactly once */
    assert_int_equal(ha + hb, spent);
    assert_true(ha > 0 && hb > 0);
    assert_true(spent <= cap);                  /* actual <= reserved: no overshoot at all */
    assert_true(spent > cap / 2);               /* and the cap was really reached */
    assert_true(edquot > 0);
    assert_true(eagain > 0);
    assert_int_equal(redis_int(c, "HGET t4:win:day:test reserved"), 0);
    assert_int_equal(redis_int(c, "ZCARD t4:win:day:test:exp"), 0);
    redisFree(c);
    shared_stop(a);
    shared_stop(b);
}

/* Settling above the reservation is the one documented overshoot. */
static void test_overshoot_bound(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t5");
    shared *s = start_ok(&cfg, "host-a");
    shared_caps caps = one_cap(100);
    char a[SHARED_ID_MAX], b[SHARED_ID_MAX], msg[512];
    assert_int_equal(do_reserve(s, &caps, 60, a, NULL), 0);
    assert_int_equal(do_reserve(s, &caps, 40, b, NULL), 0);
    assert_int_equal(do_reserve(s, &caps, 1, NULL, NULL), EAGAIN);
    assert_int_equal(do_settle(s, a, 80, &caps), 0);           /* 20 over its reservation */
    assert_int_equal(do_reserve(s, &caps, 1, NULL, msg), EAGAIN);
    assert_int_equal(do_settle(s, b, 40, &caps), 0);
    shared_spend_info sp;
    shared_spend(s, &caps, &sp);
    assert_int_equal(sp.w[0].spent_nusd, 120);                 /* = cap + (80 - 60) */
    assert_int_equal(do_reserve(s, &caps, 1, NULL, NULL), EDQUOT);
    shared_stop(s);
}

/* ---- TTLs ---- */

static void test_dead_host_reservation_expires(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t6");
    cfg.reservation_ttl_ms = 1000;
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    shared_caps caps = one_cap(USD(1));
    assert_int_equal(do_reserve(b, &caps, USD(0.9), NULL, NULL), 0);
    int64_t t0 = now_us();
    shared_stop(b);                              /* host b dies holding $0.90 */
    assert_int_equal(do_reserve(a, &caps, USD(0.5), NULL, NULL), EAGAIN);
    int64_t freed_us = 0;
    char id[SHARED_ID_MAX];
    while (now_us() - t0 < 3000000) {
        int st = do_reserve(a, &caps, USD(0.5), id, NULL);
        if (st == 0) {
            freed_us = now_us() - t0;
            break;
        }
        assert_int_equal(st, EAGAIN);
        sleep_ms(20);
    }
    print_message("a dead host's reservation freed after %lld ms (TTL 1000 ms)\n",
                  (long long)freed_us / 1000);
    assert_true(freed_us > 0);
    assert_true(freed_us >= 900000);             /* not before its TTL */
    assert_true(freed_us <= 1600000);            /* and soon after it */
    redisContext *c = redis_client(&g_r);
    assert_int_equal(redis_int(c, "HGET t6:win:day:test reserved"), USD(0.5));
    redisFree(c);
    shared_stop(a);
}

static void test_settle_after_expiry_still_counts(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t7");
    cfg.reservation_ttl_ms = 1000;
    shared *s = start_ok(&cfg, "host-a");
    shared_caps caps = one_cap(USD(1));
    char id[SHARED_ID_MAX];
    assert_int_equal(do_reserve(s, &caps, USD(0.3), id, NULL), 0);
    sleep_ms(1300);
    /* the reservation no longer counts: the sync purged it */
    shared_spend_info sp;
    shared_spend(s, &caps, &sp);
    assert_int_equal(sp.w[0].reserved_nusd, 0);
    assert_int_equal(do_settle(s, id, USD(0.25), &caps), 0);
    redisContext *c = redis_client(&g_r);
    assert_int_equal(redis_int(c, "HGET t7:win:day:test spent"), USD(0.25));
    assert_int_equal(redis_int(c, "HGET t7:win:day:test reserved"), 0);
    redisFree(c);
    shared_stop(s);
}

/* ---- the spend cache and floors ---- */

static void test_spend_cache_and_floor(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t8");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    shared_caps caps = one_cap(USD(10));
    shared_spend_info sp;
    shared_spend(a, &caps, &sp);
    assert_int_equal(sp.n, 1);
    assert_false(sp.w[0].known);                 /* asked for the first time */
    assert_int_equal(do_settle(b, NULL, USD(2), &caps), 0);
    /* a learns b's spend from its sync, within breaker_sync_ms */
    int64_t end = now_us() + 1000000;
    do {
        shared_spend(a, &caps, &sp);
        if (sp.w[0].known && sp.w[0].spent_nusd == USD(2))
            break;
        sleep_ms(5);
    } while (now_us() < end);
    assert_true(sp.w[0].known);
    assert_int_equal(sp.w[0].spent_nusd, USD(2));
    assert_int_equal(sp.w[0].host_nusd, 0);

    /* a's ledger says it spent $3 today: its share is raised once, not added */
    rf_err err;
    assert_int_equal(shared_host_spent(a, "day:test", USD(3), &err), 0);
    assert_int_equal(shared_host_spent(a, "day:test", USD(1), &err), 0);
    assert_int_equal(shared_host_spent(a, "day:test", USD(3), &err), 0);
    redisContext *c = redis_client(&g_r);
    end = now_us() + 1000000;
    while (redis_int(c, "HGET t8:win:day:test h:host-a") != USD(3) && now_us() < end)
        sleep_ms(5);
    sleep_ms(50);
    assert_int_equal(redis_int(c, "HGET t8:win:day:test h:host-a"), USD(3));
    assert_int_equal(redis_int(c, "HGET t8:win:day:test spent"), USD(5));
    redisFree(c);
    shared_stop(a);
    shared_stop(b);
}

/* ---- failure modes ---- */

static void test_redis_killed_and_restarted(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t9");
    shared *a = start_ok(&cfg, "host-a");
    shared *b = start_ok(&cfg, "host-b");
    shared_caps caps = one_cap(USD(10));
    char id[SHARED_ID_MAX];
    assert_int_equal(do_settle(a, NULL, USD(1), &caps), 0);
    assert_int_equal(do_settle(b, NULL, USD(2), &caps), 0);
    assert_int_equal(do_reserve(a, &caps, USD(0.5), id, NULL), 0);

    int64_t t0 = now_us();
    redis_kill(&g_r, SIGKILL);                   /* no persistence: all of it is gone */
    wait_state(a, SHARED_DOWN, 1000);
    wait_state(b, SHARED_DOWN, 1000);
    print_message("Redis killed: DOWN after %lld ms\n", (long long)(now_us() - t0) / 1000);
    shared_health_info h;
    shared_health(a, &h);
    assert_non_null(strstr(h.last_error, "127.0.0.1"));

    /* requests that need Redis now fail at once, never hang */
    int64_t t1 = now_us();
    assert_int_equal(do_reserve(a, &caps, USD(0.1), NULL, NULL), ENOTCONN);
    assert_true(now_us() - t1 < 500000);
    /* a settle waits for Redis */
    result r = RESULT_INIT;
    rf_err err;
    assert_int_equal(shared_settle(a, id, USD(0.4), &caps, on_done, &r, &err), 0);
    assert_false(result_wait(&r, 300));
    shared_health(a, &h);
    assert_int_equal(h.deferred, 1);
    assert_int_equal(h.deferred_nusd, USD(0.4));

    redis_start(&g_r);                           /* same port, empty */
    wait_state(a, SHARED_CONNECTED, 7000);
    wait_state(b, SHARED_CONNECTED, 7000);
    assert_true(result_wait(&r, 2000));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.calls, 1);
    /* the hosts put back what they had spent, and the deferred settle on top */
    redisContext *c = redis_client(&g_r);
    int64_t end = now_us() + 2000000;
    while (redis_int(c, "HGET t9:win:day:test spent") != USD(3.4) && now_us() < end)
        sleep_ms(10);
    assert_int_equal(redis_int(c, "HGET t9:win:day:test spent"), USD(3.4));
    assert_int_equal(redis_int(c, "HGET t9:win:day:test h:host-a"), USD(1.4));
    assert_int_equal(redis_int(c, "HGET t9:win:day:test h:host-b"), USD(2));
    shared_health(a, &h);
    assert_int_equal(h.deferred, 0);
    assert_true(h.connects >= 2);
    result_destroy(&r);
    redisFree(c);
    shared_stop(a);
    shared_stop(b);
}

static void test_redis_stalled(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t10");
    shared *s = start_ok(&cfg, "host-a");
    redisContext *c = redis_client(&g_r);
    shared_caps caps = one_cap(USD(1));
    redis_ok(c, "CLIENT PAUSE 2500 ALL");
    int64_t t0 = now_us();
    int st = do_reserve(s, &caps, 1, NULL, NULL);
    long ms = (long)((now_us() - t0) / 1000);
    print_message("Redis stalled: reserve answered %s after %ld ms\n", strerror(st), ms);
    assert_int_equal(st, ENOTCONN);
    assert_true(ms <= 2500);       /* the 1 s timeout, maybe twice (a sync, a reconnect) */
    wait_state(s, SHARED_DOWN, 500);
    wait_state(s, SHARED_CONNECTED, 8000);       /* back after the pause */
    assert_int_equal(do_reserve(s, &caps, 1, NULL, NULL), 0);
    redisFree(c);
    shared_stop(s);
}

static void test_oom_degrades(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t11");
    shared *s = start_ok(&cfg, "host-a");
    redisContext *c = redis_client(&g_r);
    shared_caps caps = one_cap(USD(1));
    char msg[512];
    redis_ok(c, "CONFIG SET maxmemory-policy noeviction");
    redis_ok(c, "CONFIG SET maxmemory 1");
    assert_int_equal(do_reserve(s, &caps, 5, NULL, msg), EIO);
    assert_non_null(strstr(msg, "OOM"));
    shared_health_info h;
    shared_health(s, &h);
    assert_int_equal(h.state, SHARED_DEGRADED);
    assert_non_null(strstr(h.last_error, "OOM"));
    /* money already spent is recorded even when Redis is full */
    assert_int_equal(do_settle(s, NULL, 7, &caps), 0);
    assert_int_equal(redis_int(c, "HGET t11:win:day:test spent"), 7);
    /* a breaker publish refused for OOM is kept and tried again */
    shared *b = start_ok(&cfg, "host-b");
    rf_err err;
    assert_int_equal(shared_breaker_publish(s, "prov", NULL, 1, wall_ms() + 60000, "503",
                                            &err), 0);
    sleep_ms(300);
    assert_int_equal(redis_int(c, "HLEN t11:brk"), 0);
    assert_false(shared_breaker_open(b, "prov", NULL, NULL));
    redis_ok(c, "CONFIG SET maxmemory 0");
    int64_t end = now_us() + 2000000;
    while (!shared_breaker_open(b, "prov", NULL, NULL) && now_us() < end)
        sleep_ms(5);
    assert_true(shared_breaker_open(b, "prov", NULL, NULL));
    assert_int_equal(do_reserve(s, &caps, 5, NULL, NULL), 0);
    wait_state(s, SHARED_CONNECTED, 3000);          /* after the hold: 1 s of no failures */
    shared_stop(b);
    redisFree(c);
    shared_stop(s);
}

static void test_noscript_reloads(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t12");
    shared *s = start_ok(&cfg, "host-a");
    redisContext *c = redis_client(&g_r);
    shared_caps caps = one_cap(USD(1));
    redis_ok(c, "SCRIPT FLUSH");
    assert_int_equal(do_reserve(s, &caps, 5, NULL, NULL), 0);
    shared_health_info h;
    shared_health(s, &h);
    assert_int_equal(h.state, SHARED_CONNECTED);
    assert_int_equal(redis_int(c, "HGET t12:win:day:test reserved"), 5);
    redisFree(c);
    shared_stop(s);
}

static void test_password(void **state)
{
    (void)state;
    redis_stop(&g_r);
    memset(&g_r, 0, sizeof g_r);
    snprintf(g_r.password, sizeof g_r.password, "s3cret-Pass-123");
    redis_start(&g_r);
    rf_shared_cfg cfg = test_cfg(&g_r, "t13");
    cfg.password_env = "RFS_TEST_REDIS_PASS";
    rf_err err;

    setenv("RFS_TEST_REDIS_PASS", "wrong-Pass-456", 1);
    shared *s = shared_start(&cfg, "host-a", &err);
    assert_non_null(s);
    sleep_ms(300);
    shared_health_info h;
    shared_health(s, &h);
    print_message("wrong password: %s\n", h.last_error);
    assert_int_equal(h.state, SHARED_DOWN);
    assert_non_null(strstr(h.last_error, "AUTH refused"));
    assert_null(strstr(h.last_error, "wrong-Pass-456"));
    shared_caps caps = one_cap(1);
    assert_int_equal(do_reserve(s, &caps, 1, NULL, NULL), ENOTCONN);
    shared_stop(s);

    setenv("RFS_TEST_REDIS_PASS", "s3cret-Pass-123", 1);
    s = start_ok(&cfg, "host-a");
    assert_int_equal(do_reserve(s, &caps, 1, NULL, NULL), 0);
    shared_stop(s);

    /* no password for a server that wants one: the first script load says so */
    cfg.password_env = NULL;
    s = shared_start(&cfg, "host-a", &err);
    assert_non_null(s);
    sleep_ms(300);
    shared_health(s, &h);
    assert_int_equal(h.state, SHARED_DOWN);
    assert_non_null(strstr(h.last_error, "NOAUTH"));
    shared_stop(s);

    cfg.password_env = "RFS_TEST_REDIS_UNSET";
    unsetenv("RFS_TEST_REDIS_UNSET");
    assert_null(shared_start(&cfg, "host-a", &err));
    assert_int_equal(err.code, EINVAL);
    assert_string_equal(err.msg, "shared.password_env: RFS_TEST_REDIS_UNSET is not set");
    unsetenv("RFS_TEST_REDIS_PASS");
}

/* /DB in the URL: the keys are in that database. */
static void test_select_db(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t16");
    cfg.db = 3;
    shared *s = start_ok(&cfg, "host-a");
    shared_caps caps = one_cap(USD(1));
    assert_int_equal(do_reserve(s, &caps, 5, NULL, NULL), 0);
    redisContext *c = redis_client(&g_r);
    assert_int_equal(redis_int(c, "EXISTS t16:win:day:test"), 0);
    redis_ok(c, "SELECT 3");
    assert_int_equal(redis_int(c, "HGET t16:win:day:test reserved"), 5);
    redisFree(c);
    shared_stop(s);
    cfg.db = 99999;                              /* beyond "databases": refused clearly */
    rf_err err;
    s = shared_start(&cfg, "host-a", &err);
    assert_non_null(s);
    sleep_ms(300);
    shared_health_info h;
    shared_health(s, &h);
    assert_int_equal(h.state, SHARED_DOWN);
    assert_non_null(strstr(h.last_error, "SELECT refused"));
    shared_stop(s);
}

static void test_bad_settings(void **state)
{
    (void)state;
    rf_shared_cfg cfg = test_cfg(&g_r, "t14");
    rf_err err;
    cfg.tls = 1;
    assert_null(shared_start(&cfg, "host-a", &err));
    assert_int_equal(err.code, ENOTSUP);
    assert_non_null(strstr(err.msg, "rediss://"));
    cfg.tls = 0;
    assert_null(shared_start(&cfg, "host a", &err));
    assert_int_equal(err.code, EINVAL);
    assert_null(shared_start(&cfg, "", &err));
    assert_null(shared_start(&cfg, NULL, &err));
    assert_null(shared_start(&cfg, "h|x", &err));
    assert_null(shared_start(NULL, "h", &err));
    cfg.reservation_ttl_ms = 10;
    assert_null(shared_start(&cfg, "h", &err));
}

/* Nothing listening: requests fail fast; deferred ones are cancelled by stop. */
static void test_never_connected_and_stop_cancels(void **state)
{
    (void)state;
    test_redis nobody = {.port = free_port()};
    rf_shared_cfg cfg = test_cfg(&nobody, "t15");
    rf_err err;
    shared *s = shared_start(&cfg, "host-a", &err);
    assert_non_null(s);
    shared_caps caps = one_cap(1);
    int64_t t0 = now_us();
    assert_int_equal(do_reserve(s, &caps, 1, NULL, NULL), ENOTCONN);
    assert_true(now_us() - t0 < 1000000);
    shared_health_info h;
    shared_health(s, &h);
    assert_int_equal(h.state, SHARED_DOWN);
    assert_non_null(strstr(h.last_error, "connect"));
    result r1 = RESULT_INIT, r2 = RESULT_INIT;
    assert_int_equal(shared_settle(s, NULL, 5, &caps, on_done, &r1, &err), 0);
    assert_int_equal(shared_release(s, "x/y/1", on_done, &r2, &err), 0);
    assert_false(result_wait(&r1, 200));
    shared_stop(s);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.status, ECANCELED);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.status, ECANCELED);
    result_destroy(&r1);
    result_destroy(&r2);
    shared_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reserve_settle_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eagain_edquot_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_hosts_never_exceed_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overshoot_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_host_reservation_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settle_after_expiry_still_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spend_cache_and_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_killed_and_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_stalled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom_degrades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noscript_reloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_connected_and_stop_cancels, setup, teardown),
    };
    if (getenv("RFS_TEST_FILTER"))                 /* e.g. RFS_TEST_FILTER='test_oom*' */
        cmocka_set_test_filter(getenv("RFS_TEST_FILTER"));
    return cmocka_run_group_tests_name("shared", tests, NULL, NULL);
}
