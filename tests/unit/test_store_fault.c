/* test_store_fault.c — store.c's failing state: writes that fail (the fault VFS in modes
 * "full" and "eio", the ROUTEFS_FAULT_FILE switch, a real full tmpfs when running as
 * root), refused work, held operations kept in order and committed exactly once when
 * the disk works again, the health listener, and store_close while failing (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "store_prompts.h"
#include "store_test.h"

static char g_fault_file[64];

typedef struct fixture {
    char dir[64];
    char mnt[96];              /* a tmpfs mounted here (tmpfs test only) */
    store *st;
    /* health listener */
    pthread_mutex_t lock;
    int transitions[16];
    int ntransitions;
} fixture;

static void listener(int failing, void *ud)
{
    fixture *fx = ud;
    pthread_mutex_lock(&fx->lock);
    if (fx->ntransitions < 16)
        fx->transitions[fx->ntransitions] = failing;
    fx->ntransitions++;
    pthread_mutex_unlock(&fx->lock);
}

static int ntransitions(fixture *fx)
{
    pthread_mutex_lock(&fx->lock);
    int n = fx->ntransitions;
    pthread_mutex_unlock(&fx->lock);
    return n;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    pthread_mutex_init(&fx->lock, NULL);
    tst_tempdir(fx->dir, sizeof fx->dir, "fault");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    store_fault_set(NULL);
    unlink(g_fault_file);
    store_close(fx->st);
    if (fx->mnt[0])
        umount2(fx->mnt, MNT_DETACH);
    tst_rmrf(fx->dir);
    pthread_mutex_destroy(&fx->lock);
    free(fx);
    return 0;
}

static void open_store(fixture *fx, const char *dir)
{
    fx->st = tst_open(dir);
    store_set_health_listener(fx->st, listener, fx);
}

static store_health health(fixture *fx)
{
    store_health h;
    store_health_get(fx->st, &h);
    return h;
}

/* A job commit for path/gen (NULL path: ledger rows only) with nrows ledger rows. */
static job_commit *make_commit(const char *path, int64_t gen, int nrows, const char *ref_base,
                               size_t out_len, tst_outcome *outcome)
{
    job_commit *c = job_commit_new();
    assert_non_null(c);
    c->path = tst_dup(path);
    c->gen = gen;
    c->state = PS_DONE;
    c->finished_ms = tst_wall_ms();
    c->out = malloc(out_len + 1);
    assert_non_null(c->out);
    for (size_t i = 0; i < out_len; i++)
        c->out[i] = (char)('a' + (i * 7919) % 26);   /* does not compress to nothing */
    c->out[out_len] = '\0';
    c->out_len = out_len;
    c->meta = tst_dup("{\"state\":\"done\"}");
    c->activity = tst_dup("{\"job\":1}\n");
    c->ledger = calloc((size_t)nrows, sizeof *c->ledger);
    assert_non_null(c->ledger);
    for (int i = 0; i < nrows; i++) {
        char ref[96];
        snprintf(ref, sizeof ref, "%s#%d", ref_base, i);
        c->ledger[i] = tst_row(ref, tst_wall_ms(), "t", NULL, "or", "m", NULL, 0.001, 0);
    }
    c->nledger = (size_t)nrows;
    c->on_done = tst_commit_done;
    c->ud = outcome;
    return c;
}

static int64_t ledger_dups(store *st)
{
    return tst_query_int(st, "SELECT count(*) FROM (SELECT ref FROM ledger GROUP BY ref"
                             " HAVING count(*) > 1)", -1);
}

enum { HELD_OPS = 40, COMMITS = 6, ROWS_PER_COMMIT = 3 };

typedef struct held_work {
    test_op ops[HELD_OPS];
    tst_outcome outcomes[COMMITS];
    test_op dropped;           /* not held: failed at once */
} held_work;

/* Submit what must survive a failing disk: HELD_OPS held test operations and COMMITS job
 * commits (the first one for t/p at gen, installing its result), plus one operation that
 * is not held. */
static void submit_held(fixture *fx, held_work *hw, int64_t gen, size_t out_len)
{
    memset(hw, 0, sizeof *hw);
    for (int i = 0; i < HELD_OPS; i++) {
        tst_op_init(&hw->ops[i], fx->st, 1000 + i, STORE_OP_HELD | (i % 2 ? STORE_OP_DURABLE : 0));
        store_submit(fx->st, &hw->ops[i].op);
        if (i % 8 == 0) {
            char ref[32];
            snprintf(ref, sizeof ref, "c%d", i / 8);
            sl_submit(fx->st, make_commit(i == 0 ? "t/p" : NULL, i == 0 ? gen : 0,
                                          ROWS_PER_COMMIT, ref, i == 0 ? out_len : 10,
                                          &hw->outcomes[i / 8]));
        }
    }
    sl_submit(fx->st, make_commit(NULL, 0, ROWS_PER_COMMIT, "c5", 10, &hw->outcomes[5]));
    tst_op_init(&hw->dropped, fx->st, 9999, 0);
    store_submit(fx->st, &hw->dropped.op);
}

static int held_done(held_work *hw)
{
    int n = 0;
    for (int i = 0; i < HELD_OPS; i++)
        n += __atomic_load_n(&hw->ops[i].done_calls, __ATOMIC_SEQ_CST);
    for (int i = 0; i < COMMITS; i++)
        n += tst_calls(&hw->outcomes[i]);
    return n;
}

/* Everything held committed once, in the order submitted. */
static void check_held_committed(fixture *fx, held_work *hw)
{
    for (int i = 0; i < HELD_OPS; i++) {
        assert_int_equal(hw->ops[i].done_calls, 1);
        assert_int_equal(hw->ops[i].status, 0);
        if (i > 0) {
            assert_true(hw->ops[i].done_order > hw->ops[i - 1].done_order);
            assert_true(hw->ops[i].seq > hw->ops[i - 1].seq);     /* applied in order */
        }
    }
    for (int i = 0; i < COMMITS; i++) {
        assert_int_equal(tst_calls(&hw->outcomes[i]), 1);
        assert_int_equal(hw->outcomes[i].status, 0);
    }
    assert_int_equal(hw->outcomes[0].installed, 1);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM kv WHERE key LIKE 't.0010%'",
                                   -1), HELD_OPS);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM ledger", -1),
                     COMMITS * ROWS_PER_COMMIT);
    assert_int_equal(ledger_dups(fx->st), 0);
    assert_int_equal(tst_query_int(fx->st, "SELECT sum(requests) FROM spend_days", -1),
                     COMMITS * ROWS_PER_COMMIT);
    assert_int_equal(tst_query_int(fx->st, "SELECT state FROM prompts WHERE path = 't/p'", -1),
                     PS_DONE);
}

/* A thread waiting in store_run for a held operation while the store fails. */
typedef struct held_runner {
    store *st;
    test_op op;
    int rc;
} held_runner;

static void *held_run_main(void *arg)
{
    held_runner *h = arg;
    rf_err err;
    tst_op_init(&h->op, h->st, 5000, STORE_OP_HELD | STORE_OP_DURABLE);
    h->rc = store_run(h->st, &h->op.op, &err);
    return NULL;
}

/* The whole cycle: the disk fails (make_fail), work is refused or held, the disk works
 * again (make_work), everything held commits once, and is still there after a reopen. */
static void fail_and_recover(fixture *fx, const char *dir, void (*make_fail)(fixture *),
                             void (*make_work)(fixture *), int code, size_t out_len)
{
    open_store(fx, dir);
    rf_err err;
    prompt_attrs a = {.mode = 0644};
    int64_t gen = store_next_generation(fx->st);
    assert_int_equal(sp_install(fx->st, "t/p", "hello", 5, 7, gen, PS_PENDING, &a, 1, &err), 0);
    assert_int_equal(store_admit(fx->st), 0);

    make_fail(fx);
    /* a synchronous write reports the disk's error and the store turns failing */
    char big[300];
    memset(big, 'x', sizeof big);
    rf_err_clear(&err);
    int r = sp_install(fx->st, "t/first", big, sizeof big, 1, store_next_generation(fx->st),
                       PS_PENDING, &a, 1, &err);
    assert_int_equal(r, -code);
    assert_int_equal(err.code, code);
    assert_int_equal(store_admit(fx->st), -code);
    store_health h = health(fx);
    assert_int_equal(h.failing, 1);
    assert_int_equal(h.code, code);
    assert_true(h.why[0] != '\0');
    assert_true(h.since_ms > 0 && h.since_ms <= tst_wall_ms());
    assert_int_equal(h.failures, 1);
    WAIT_UNTIL(ntransitions(fx) >= 1, 5000);
    assert_int_equal(ntransitions(fx), 1);
    assert_int_equal(fx->transitions[0], 1);

    /* more synchronous work fails at once with the same code */
    int64_t t0 = tst_mono_ms();
    rf_err_clear(&err);
    assert_int_equal(sp_mkdir(fx->st, "t/d", &a, &err), -code);
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, "failing"));
    assert_true(tst_mono_ms() - t0 < 1000);

    static held_work hw;
    submit_held(fx, &hw, gen, out_len);
    static held_runner runner;
    runner = (held_runner){.st = fx->st, .rc = 1};
    pthread_t runner_thread;
    assert_int_equal(pthread_create(&runner_thread, NULL, held_run_main, &runner), 0);
    /* the operation that is not held fails promptly; the held ones wait, in memory */
    WAIT_UNTIL(__atomic_load_n(&hw.dropped.done_calls, __ATOMIC_SEQ_CST) == 1, 5000);
    assert_int_equal(hw.dropped.done_calls, 1);
    assert_int_equal(hw.dropped.status, -code);
    WAIT_UNTIL(health(fx).held == HELD_OPS + COMMITS + 1, 5000);
    h = health(fx);
    assert_int_equal(h.held, HELD_OPS + COMMITS + 1);   /* and the one waited for */
    assert_int_equal(h.failing, 1);
    assert_int_equal(held_done(&hw), 0);
    tst_sleep_ms(600);                     /* a retry or two while it still fails */
    assert_int_equal(held_done(&hw), 0);
    assert_int_equal(tst_count_t(fx->st), 0);
    assert_int_equal(store_admit(fx->st), -code);
    assert_int_equal(store_flush(fx->st), -code);   /* work is held: flush says so */
    assert_int_equal(health(fx).failures, 1);       /* retries are not new failures */

    make_work(fx);
    t0 = tst_mono_ms();
    /* retries back off up to 5 s: a few periods are plenty */
    WAIT_UNTIL(held_done(&hw) == HELD_OPS + COMMITS, 20000);
    print_message("recovered %d held operations in %lld ms\n", held_done(&hw),
                  (long long)(tst_mono_ms() - t0));
    assert_int_equal(held_done(&hw), HELD_OPS + COMMITS);
    assert_int_equal(pthread_join(runner_thread, NULL), 0);
    assert_int_equal(runner.rc, 0);                 /* the waiting caller got its answer */
    assert_true(runner.op.seq > hw.ops[HELD_OPS - 1].seq);
    check_held_committed(fx, &hw);
    WAIT_UNTIL(ntransitions(fx) >= 2, 5000);
    assert_int_equal(ntransitions(fx), 2);
    assert_int_equal(fx->transitions[1], 0);
    h = health(fx);
    assert_int_equal(h.failing, 0);
    assert_int_equal(h.code, 0);
    assert_int_equal(h.held, 0);
    assert_string_equal(h.why, "");
    assert_int_equal(h.since_ms, 0);
    assert_int_equal(store_admit(fx->st), 0);
    assert_int_equal(sp_mkdir(fx->st, "t/d", &a, &err), 0);   /* new work goes through */
    assert_int_equal(store_flush(fx->st), 0);

    /* durable: all there after a reopen, exactly once */
    store_close(fx->st);
    fx->st = tst_open(dir);
    check_held_committed(fx, &hw);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(sp_read(fx->st, "t/p", SP_OUT, gen, &out, &len, &err), 0);
    assert_int_equal(len, out_len);
    free(out);
}

static void fault_full(fixture *fx)
{
    store_fault_set("full");
}

static void fault_eio(fixture *fx)
{
    store_fault_set("eio");
}

static void fault_none(fixture *fx)
{
    store_fault_set(NULL);
}

static void test_failing_full(void **state)
{
    fixture *fx = *state;
    fail_and_recover(fx, fx->dir, fault_full, fault_none, ENOSPC, 100);
}

static void test_failing_eio(void **state)
{
    fixture *fx = *state;
    fail_and_recover(fx, fx->dir, fault_eio, fault_none, EIO, 100);
}

/* ROUTEFS_FAULT_FILE (set in main before the first store opens): while the file exists,
 * its first word is the fault. */
static void fault_file_on(fixture *fx)
{
    FILE *f = fopen(g_fault_file, "w");
    assert_non_null(f);
    fputs("full\n", f);
    assert_int_equal(fclose(f), 0);
}

static void fault_file_off(fixture *fx)
{
    assert_int_equal(unlink(g_fault_file), 0);
}

static void test_failing_fault_file(void **state)
{
    fixture *fx = *state;
    fail_and_recover(fx, fx->dir, fault_file_on, fault_file_off, ENOSPC, 100);
}

/* ---- a real full disk ---- */

static char g_filler[160];

static void fill_disk(fixture *fx)
{
    snprintf(g_filler, sizeof g_filler, "%s/filler", fx->mnt);
    int fd = open(g_filler, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static char chunk[65536];
    memset(chunk, 'f', sizeof chunk);
    size_t chunk_len = sizeof chunk;
    for (;;) {
        ssize_t n = write(fd, chunk, chunk_len);
        if (n > 0)
            continue;
        if (n < 0 && errno == ENOSPC && chunk_len > 1) {
            chunk_len /= 2;                /* fill the last pages too */
            continue;
        }
        break;
    }
    close(fd);
}

static void free_disk(fixture *fx)
{
    assert_int_equal(unlink(g_filler), 0);
}

static void test_failing_tmpfs(void **state)
{
    fixture *fx = *state;
    if (geteuid() != 0) {
        print_message("skipped: mounting a tmpfs needs root\n");
        skip();
    }
    snprintf(fx->mnt, sizeof fx->mnt, "%s/mnt", fx->dir);
    assert_int_equal(mkdir(fx->mnt, 0700), 0);
    if (mount("tmpfs", fx->mnt, "tmpfs", 0, "size=2m") < 0) {
        print_message("skipped: mount -t tmpfs -o size=2m: %s\n", strerror(errno));
        fx->mnt[0] = '\0';
        skip();
    }
    char dir[160];
    snprintf(dir, sizeof dir, "%s/state", fx->mnt);
    /* the answer held is larger than anything written before: it needs new space */
    fail_and_recover(fx, dir, fill_disk, free_disk, ENOSPC, 400 * 1024);
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(umount2(fx->mnt, 0), 0);
    fx->mnt[0] = '\0';
}

/* ---- closing while failing ---- */

static void start_failing(fixture *fx)
{
    open_store(fx, fx->dir);
    store_fault_set("eio");
    prompt_attrs a = {.mode = 0755};
    rf_err err;
    assert_int_equal(sp_mkdir(fx->st, "t/d", &a, &err), -EIO);
    assert_int_equal(store_admit(fx->st), -EIO);
}

static void test_close_while_failing_gives_up(void **state)
{
    fixture *fx = *state;
    start_failing(fx);
    static held_work hw;
    submit_held(fx, &hw, 1, 10);
    WAIT_UNTIL(health(fx).held == HELD_OPS + COMMITS, 5000);
    assert_int_equal(health(fx).held, HELD_OPS + COMMITS);
    int64_t t0 = tst_mono_ms();
    store_close(fx->st);
    fx->st = NULL;
    int64_t took = tst_mono_ms() - t0;
    print_message("store_close while failing gave up after %lld ms\n", (long long)took);
    assert_true(took < 10000);
    /* every held operation was told it was lost, once */
    for (int i = 0; i < HELD_OPS; i++) {
        assert_int_equal(hw.ops[i].done_calls, 1);
        assert_int_equal(hw.ops[i].status, -EIO);
    }
    for (int i = 0; i < COMMITS; i++) {
        assert_int_equal(tst_calls(&hw.outcomes[i]), 1);
        assert_int_equal(hw.outcomes[i].status, -EIO);
    }
    /* and none of it is half there */
    store_fault_set(NULL);
    fx->st = tst_open(fx->dir);
    assert_int_equal(tst_count_t(fx->st), 0);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM ledger", -1), 0);
}

static void test_close_while_failing_nothing_held(void **state)
{
    fixture *fx = *state;
    start_failing(fx);
    int64_t t0 = tst_mono_ms();
    store_close(fx->st);
    fx->st = NULL;
    int64_t took = tst_mono_ms() - t0;
    print_message("store_close while failing, nothing held: %lld ms\n", (long long)took);
    assert_true(took < 2000);              /* nothing to wait for */
    store_fault_set(NULL);
}

static void *lift_fault(void *arg)
{
    tst_sleep_ms(700);
    store_fault_set(NULL);
    return NULL;
}

static void test_close_commits_when_disk_recovers(void **state)
{
    fixture *fx = *state;
    start_failing(fx);
    static held_work hw;
    submit_held(fx, &hw, 1, 10);
    WAIT_UNTIL(health(fx).held == HELD_OPS + COMMITS, 5000);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, lift_fault, NULL), 0);
    store_close(fx->st);                   /* still retrying when the disk comes back */
    fx->st = NULL;
    assert_int_equal(pthread_join(t, NULL), 0);
    for (int i = 0; i < HELD_OPS; i++) {
        assert_int_equal(hw.ops[i].done_calls, 1);
        assert_int_equal(hw.ops[i].status, 0);
    }
    fx->st = tst_open(fx->dir);
    assert_int_equal(tst_count_t(fx->st), HELD_OPS);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM ledger", -1),
                     COMMITS * ROWS_PER_COMMIT);
}

/* A failing store with nothing held finds out by itself that the disk works again. */
static void test_probe_recovers_without_work(void **state)
{
    fixture *fx = *state;
    start_failing(fx);
    store_fault_set(NULL);
    WAIT_UNTIL(store_admit(fx->st) == 0, 20000);
    assert_int_equal(store_admit(fx->st), 0);
    WAIT_UNTIL(ntransitions(fx) >= 2, 5000);
    assert_int_equal(ntransitions(fx), 2);
    assert_int_equal(fx->transitions[0], 1);
    assert_int_equal(fx->transitions[1], 0);
    prompt_attrs a = {.mode = 0755};
    rf_err err;
    assert_int_equal(sp_mkdir(fx->st, "t/d", &a, &err), 0);
}

int main(void)
{
    snprintf(g_fault_file, sizeof g_fault_file, "/tmp/rfs-fault-file.%ld", (long)getpid());
    unlink(g_fault_file);
    setenv("ROUTEFS_FAULT_FILE", g_fault_file, 1);   /* read once, at the first open */
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_failing_full),
        T(test_failing_eio),
        T(test_failing_fault_file),
        T(test_failing_tmpfs),
        T(test_close_while_failing_gives_up),
        T(test_close_while_failing_nothing_held),
        T(test_close_commits_when_disk_recovers),
        T(test_probe_recovers_without_work),
#undef T
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(g_fault_file);
    return r;
}
