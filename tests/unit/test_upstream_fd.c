/* test_upstream_fd.c — load and file descriptors: a thousand concurrent requests, the
 * socket budget taken from RLIMIT_NOFILE, 200 requests under a limit of 64 descriptors,
 * a transfer that finds no descriptor left (EMFILE), the budget's shares among tiers and
 * the descriptors a scratch file may keep; and upstream_post's ordering.
 *
 * The descriptor limit is lowered in-process, before upstream_start, and put back right
 * after each test that lowers it (the test server shares the process and its limit). */
#include "test_upstream_env.h"

#include <fcntl.h>
#include <sys/resource.h>

static struct rlimit base_limit;  /* what main() set up: the limit restored after each test */

static int set_soft_limit(rlim_t soft)
{
    struct rlimit rl = base_limit;
    rl.rlim_cur = soft;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

static void restore_limit(void)
{
    (void)setrlimit(RLIMIT_NOFILE, &base_limit);
}

/* Replace e->up by a loop started under a soft descriptor limit of `soft`. */
static void restart_under_limit(env *e, rlim_t soft)
{
    rf_err err;
    upstream_stop(e->up);
    e->up = NULL;
    assert_int_equal(set_soft_limit(soft), 0);
    e->up = upstream_start(&err);
    restore_limit();
    if (!e->up)
        fail_msg("upstream_start: %s", err.msg);
}

static void test_concurrent_1000(void **state)
{
    env *e = *state;
    if (base_limit.rlim_cur != RLIM_INFINITY && base_limit.rlim_cur < 2600)
        skip();  /* client and server ends of 1000 connections share this process */
    static const char *paths[] = { "/later", "/ok", "/echo" };
    int64_t t0 = now_ms();
    for (int i = 0; i < 1000; i++)
        submit(e, paths[i % 3], 60000, MIB, i);
    assert_true(wait_completed(e, 1000, 90000));
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(e->slots[i].calls, 1);
        assert_int_equal(e->slots[i].transport, RF_TE_NONE);
        assert_int_equal(e->slots[i].status, 200);
    }
    assert_true(wait_idle(e->up, 2000));
    assert_true(server_count(&e->srv, &e->srv.max_live) > 1);  /* they did overlap */
    assert_true(now_ms() - t0 < 90000);
}

static void test_socket_budget(void **state)
{
    env *e = *state;
    long want = base_limit.rlim_cur == RLIM_INFINITY || base_limit.rlim_cur > (1 << 20) + 64
              ? 1L << 20 : (long)base_limit.rlim_cur - 64;
    assert_int_equal(upstream_socket_budget(e->up), want);
    restart_under_limit(e, 100);
    assert_int_equal(upstream_socket_budget(e->up), 100 - 64);
    restart_under_limit(e, 64);
    assert_int_equal(upstream_socket_budget(e->up), 8);  /* the floor */
    assert_int_equal(upstream_socket_budget(NULL), 0);
}

/* 200 requests with 64 descriptors: they queue inside curl, at most 8 connections at
 * once, and every one completes. */
static void test_low_fd_limit(void **state)
{
    env *e = *state;
    restart_under_limit(e, 64);
    assert_int_equal(upstream_socket_budget(e->up), 8);
    assert_int_equal(set_soft_limit(64), 0);  /* and keep the limit while they run */
    for (int i = 0; i < 200; i++) {
        upstream_request *r = make_req(e, i % 4 ? "/ok" : "/later", 60000, MIB);
        rf_err err;
        e->slots[i].env = e;
        if (upstream_submit(e->up, r, on_done, &e->slots[i], &err) <= 0) {
            restore_limit();
            fail_msg("upstream_submit: %s", err.msg);
        }
    }
    int all = wait_completed(e, 200, 60000);
    restore_limit();
    assert_true(all);
    int ok = 0;
    for (int i = 0; i < 200; i++) {
        slot *s = &e->slots[i];
        assert_int_equal(s->calls, 1);
        if (s->transport == RF_TE_NONE && s->status == 200)
            ok++;
        else
            assert_true(s->error[0] != '\0');  /* a clean failure says why */
    }
    assert_int_equal(ok, 200);  /* queued, not failed */
    /* the budget held: 8, and a closing connection may overlap its replacement */
    assert_true(server_count(&e->srv, &e->srv.max_live) <= 8 + 2);
    assert_true(wait_idle(e->up, 2000));
}

/* No descriptor left when a transfer needs its socket: it fails, cleanly, and the loop
 * carries on once descriptors are back. */
static void test_emfile(void **state)
{
    env *e = *state;
    restart_under_limit(e, 64);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(devnull >= 0);
    enum { MAX_FILL = 100000 };
    int *fds = malloc(MAX_FILL * sizeof *fds);
    assert_non_null(fds);
    assert_int_equal(set_soft_limit(64), 0);
    int n = 0, why = 0;
    while (n < MAX_FILL) {
        int fd = dup(devnull);
        if (fd < 0) {
            why = errno;
            break;
        }
        fds[n++] = fd;
    }
    /* no cmocka assertion until the descriptors are back: a failure would leak them */
    rf_err err;
    e->slots[0].env = e;
    long id = upstream_submit(e->up, make_req(e, "/ok", 5000, MIB), on_done, &e->slots[0], &err);
    int done = id > 0 && wait_completed(e, 1, 5000);
    while (n > 0)
        close(fds[--n]);
    free(fds);
    close(devnull);
    restore_limit();

    assert_int_equal(why, EMFILE);
    assert_true(id > 0);
    assert_true(done);
    assert_int_equal(e->slots[0].transport, RF_TE_CONNECT);
    assert_non_null(strstr(e->slots[0].error, "too many open files"));
    assert_int_equal(e->slots[0].status, 0);
    submit(e, "/ok", 5000, MIB, 1);
    assert_true(wait_completed(e, 2, 5000));
    assert_int_equal(e->slots[1].transport, RF_TE_NONE);
    assert_int_equal(e->slots[1].status, 200);
}

/* ---- the socket budget divided among tiers, and what a scratch file may keep ---- */

/* upstream_tier_share of tier i of a config whose tiers have these concurrencies. */
static int share_of(const int *conc, size_t n, size_t i)
{
    rf_tier tiers[16];
    memset(tiers, 0, sizeof tiers);
    for (size_t k = 0; k < n; k++)
        tiers[k].concurrency = conc[k];
    rf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.tiers = tiers;
    cfg.tiers_len = n;
    return upstream_tier_share(&cfg, &tiers[i]);
}

static void test_tier_share(void **state)
{
    env *e = *state;
    /* a budget far above what the tiers want: every tier its concurrency */
    static const int big[] = {1000, 4};
    if (upstream_socket_budget(e->up) >= 1008)
        assert_int_equal(share_of(big, 2, 0), 1000);
    assert_int_equal(share_of(big, 2, 1), 4);

    restart_under_limit(e, 256);           /* 192 sockets, 188 for the tiers */
    assert_int_equal(share_of(big, 2, 0), 184);     /* the flood: what is left */
    assert_int_equal(share_of(big, 2, 1), 4);       /* the small tier: all it wants */
    static const int even[] = {1000, 1000};
    assert_int_equal(share_of(even, 2, 0), 94);
    assert_int_equal(share_of(even, 2, 1), 94);
    static const int three[] = {200, 50, 10};
    assert_int_equal(share_of(three, 3, 0), 128);   /* 10 + 50 + 128 = 188 */
    assert_int_equal(share_of(three, 3, 1), 50);
    assert_int_equal(share_of(three, 3, 2), 10);
    static const int fits[] = {100, 50, 38};
    assert_int_equal(share_of(fits, 3, 0), 100);    /* 188 exactly: no cut */

    restart_under_limit(e, 64);            /* the floor: 8 sockets */
    static const int ten[] = {5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(share_of(ten, 10, i), 1);  /* one each, whatever the budget */
    static const int two[] = {5, 5};
    assert_int_equal(share_of(two, 2, 0), 2);       /* 8 less 4 for lookups, halved */

    assert_int_equal(upstream_tier_share(NULL, NULL), 1);
    rf_tier lone;
    memset(&lone, 0, sizeof lone);
    lone.concurrency = 7;
    assert_int_equal(upstream_tier_share(NULL, &lone), 7);
}

static void test_fd_reserve(void **state)
{
    env *e = *state;
    restart_under_limit(e, 256);           /* 32 at the top kept; 192 sockets */
    rf_tier tiers[2];
    memset(tiers, 0, sizeof tiers);
    tiers[0].concurrency = 1000;
    tiers[1].concurrency = 4;
    rf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.tiers = tiers;
    cfg.tiers_len = 2;
    /* no socket open yet: the tiers may still open all 192 of their shares */
    assert_true(upstream_fd_may_keep(31, &cfg));
    assert_false(upstream_fd_may_keep(32, &cfg));
    /* without tiers only the 4 lookups' sockets and the top 32 are kept */
    assert_true(upstream_fd_may_keep(219, NULL));
    assert_false(upstream_fd_may_keep(220, NULL));
    assert_true(upstream_fd_may_keep(-1, &cfg));

    long before = upstream_fd_shortages(NULL, NULL, NULL);
    upstream_fd_shortage(UPSTREAM_FD_SCRATCH);
    int64_t last = 0;
    upstream_fd_use what = UPSTREAM_FD_SOCKET;
    long limit = 0;
    assert_int_equal(upstream_fd_shortages(&last, &what, &limit), before + 1);
    assert_int_equal(what, UPSTREAM_FD_SCRATCH);
    assert_int_equal(limit, 256);
    assert_true(last > 0);
}

/* ---- upstream_post ---- */

typedef struct post_rec {
    env *env;
    int seq;
    long id;
    struct post_rec *then;   /* posted by this one's callback */
    atomic_int *gate;        /* when set: wait until it is 1 before returning */
} post_rec;

static void on_post(void *ud)
{
    post_rec *p = ud;
    env *e = p->env;
    if (p->gate)
        while (!atomic_load(p->gate))
            sleep_ms(1);
    if (p->then) {
        rf_err err;
        p->then->id = upstream_post(e->up, on_post, p->then, &err);
    }
    pthread_mutex_lock(&e->lock);
    if (e->norder < (int)(sizeof e->order / sizeof e->order[0]))
        e->order[e->norder++] = p->seq;
    e->completed++;
    pthread_mutex_unlock(&e->lock);
}

typedef struct poster {
    env *env;
    post_rec recs[50];
} poster;

static void *post_many(void *arg)
{
    poster *p = arg;
    rf_err err;
    for (int i = 0; i < 50; i++)
        p->recs[i].id = upstream_post(p->env->up, on_post, &p->recs[i], &err);
    return NULL;
}

static void test_post_order(void **state)
{
    env *e = *state;
    rf_err err;
    /* from one thread: in order */
    post_rec recs[100];
    for (int i = 0; i < 100; i++) {
        recs[i] = (post_rec){ .env = e, .seq = i };
        recs[i].id = upstream_post(e->up, on_post, &recs[i], &err);
        assert_true(recs[i].id > 0);
        if (i > 0)
            assert_true(recs[i].id > recs[i - 1].id);
    }
    assert_true(wait_completed(e, 100, 5000));
    for (int i = 0; i < 100; i++)
        assert_int_equal(e->order[i], i);

    /* from four threads at once: the order they were posted in (their ids) */
    e->norder = 0;
    static poster posters[4];
    pthread_t t[4];
    for (int k = 0; k < 4; k++) {
        posters[k].env = e;
        for (int i = 0; i < 50; i++)
            posters[k].recs[i] = (post_rec){ .env = e, .seq = k * 50 + i };
        assert_int_equal(pthread_create(&t[k], NULL, post_many, &posters[k]), 0);
    }
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    assert_true(wait_completed(e, 300, 5000));
    long prev_id = 0;
    for (int i = 0; i < 200; i++) {
        int seq = e->order[i];
        long id = posters[seq / 50].recs[seq % 50].id;
        assert_true(id > prev_id);
        prev_id = id;
    }
}

/* A post made by a post runs after those already queued; a cancelled post never runs. */
static void test_post_from_post_and_cancel(void **state)
{
    env *e = *state;
    rf_err err;
    atomic_int gate = 0;
    post_rec blocker = { .env = e, .seq = 0, .gate = &gate };
    post_rec p3 = { .env = e, .seq = 3 };
    post_rec p1 = { .env = e, .seq = 1, .then = &p3 };
    post_rec p2 = { .env = e, .seq = 2 };
    post_rec gone = { .env = e, .seq = 99 };
    assert_true(upstream_post(e->up, on_post, &blocker, &err) > 0);
    sleep_ms(50);  /* the blocker is running: the next ones queue behind it */
    assert_true(upstream_post(e->up, on_post, &p1, &err) > 0);
    long gone_id = upstream_post(e->up, on_post, &gone, &err);
    assert_true(gone_id > 0);
    assert_true(upstream_post(e->up, on_post, &p2, &err) > 0);
    upstream_cancel_timer(e->up, gone_id);
    atomic_store(&gate, 1);
    assert_true(wait_completed(e, 4, 5000));
    sleep_ms(100);
    assert_int_equal(completed(e), 4);
    const int want[] = { 0, 1, 2, 3 };
    for (int i = 0; i < 4; i++)
        assert_int_equal(e->order[i], want[i]);
    assert_true(p3.id > 0);
    assert_true(upstream_post(e->up, NULL, NULL, &err) < 0);
    assert_int_equal(err.code, EINVAL);
}

int main(void)
{
    /* as many descriptors as allowed: the concurrency test needs two per connection */
    if (getrlimit(RLIMIT_NOFILE, &base_limit) == 0 && base_limit.rlim_cur != base_limit.rlim_max) {
        struct rlimit rl = base_limit;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            base_limit = rl;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_1000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_low_fd_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_from_post_and_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
