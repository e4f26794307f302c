/* test_store.c — store.c: open, the directory lock, the schema version, generations,
 * readers, synchronous operations and their own errors, group commit, and the fault VFS
 * forwarding every method when no fault is set (cmocka).  The failing state is in
 * test_store_fault.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

#include "faultvfs.h"
#include "store_prompts.h"
#include "store_test.h"

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    tst_tempdir(fx->dir, sizeof fx->dir, "store");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    store_fault_set(NULL);
    store_close(fx->st);
    tst_rmrf(fx->dir);
    free(fx);
    return 0;
}

/* ---- open / close / reopen ---- */

static void test_open_close_reopen(void **state)
{
    fixture *fx = *state;
    char nested[128];
    snprintf(nested, sizeof nested, "%s/a/b/state", fx->dir);   /* parents are created */
    fx->st = tst_open(nested);
    char real[PATH_MAX];
    assert_non_null(realpath(nested, real));
    assert_string_equal(store_path(fx->st), real);
    struct stat sb;
    assert_int_equal(fstat(store_dirfd(fx->st), &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    char path[256];
    snprintf(path, sizeof path, "%s/files", nested);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    snprintf(path, sizeof path, "%s/%s", nested, STORE_DB_NAME);
    assert_int_equal(stat(path, &sb), 0);

    sl_kv_put(fx->st, "k", "{\"v\":1}");
    assert_int_equal(store_flush(fx->st), 0);
    store_close(fx->st);
    /* a clean close folds the WAL back into the database */
    snprintf(path, sizeof path, "%s/%s-wal", nested, STORE_DB_NAME);
    assert_true(stat(path, &sb) < 0 || sb.st_size == 0);

    fx->st = tst_open(nested);
    int64_t at = 0;
    char *v = sl_kv_get(fx->st, "k", &at);
    assert_non_null(v);
    assert_string_equal(v, "{\"v\":1}");
    assert_true(at > 0);
    free(v);
    assert_null(sl_kv_get(fx->st, "absent", &at));
    assert_int_equal(at, 0);
}

static void test_open_refuses_a_file(void **state)
{
    fixture *fx = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/plain", fx->dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    rf_err err;
    rf_err_clear(&err);
    assert_null(store_open(path, &err));
    assert_int_not_equal(err.code, 0);
    assert_non_null(strstr(err.msg, path));
}

static void test_lock_refuses_second_open(void **state)
{
    fixture *fx = *state;
    fx->st = tst_open(fx->dir);
    rf_err err;
    rf_err_clear(&err);
    store *second = store_open(fx->dir, &err);
    assert_null(second);
    assert_int_equal(err.code, EBUSY);
    assert_non_null(strstr(err.msg, "in use by another routefs"));
    /* the refused open changed nothing: the first store still works */
    sl_kv_put(fx->st, "still", "1");
    assert_int_equal(store_flush(fx->st), 0);
    store_close(fx->st);
    fx->st = tst_open(fx->dir);            /* free again once the first one closed */
    char *v = sl_kv_get(fx->st, "still", NULL);
    assert_non_null(v);
    free(v);
}

static void expect_newer_schema_refused(const char *dir)
{
    rf_err err;
    rf_err_clear(&err);
    store *st = store_open(dir, &err);
    if (st) {
        store_close(st);
        fail_msg("a newer schema was opened");
    }
    assert_int_equal(err.code, EINVAL);
    if (!strstr(err.msg, "schema version 99 is newer than this routefs (1): upgrade routefs"))
        fail_msg("unclear message: %s", err.msg);
}

static void test_newer_schema_refused(void **state)
{
    fixture *fx = *state;
    fx->st = tst_open(fx->dir);
    store_close(fx->st);
    fx->st = NULL;
    tst_raw_exec(fx->dir, "UPDATE info SET value = '99' WHERE key = 'schema_version'");
    expect_newer_schema_refused(fx->dir);
    expect_newer_schema_refused(fx->dir);  /* refused again: the lock was given back */
    tst_raw_exec(fx->dir, "UPDATE info SET value = '1' WHERE key = 'schema_version'");
    fx->st = tst_open(fx->dir);
}

/* A database written by a future routefs whose tables differ from ours: the version is
 * what the message must name, not whatever of our schema fails to apply to its tables. */
static void test_newer_schema_with_other_tables(void **state)
{
    fixture *fx = *state;
    tst_raw_exec(fx->dir,
                 "PRAGMA journal_mode=WAL;"
                 "CREATE TABLE info(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
                 "INSERT INTO info VALUES('schema_version', '99');"
                 "CREATE TABLE prompts(id INTEGER PRIMARY KEY, path TEXT, body BLOB);");
    expect_newer_schema_refused(fx->dir);
}

/* ---- generations ---- */

enum { GEN_THREADS = 8, GEN_EACH = 2000 };

typedef struct gen_worker {
    store *st;
    int64_t got[GEN_EACH];
} gen_worker;

static void *gen_main(void *arg)
{
    gen_worker *g = arg;
    for (int i = 0; i < GEN_EACH; i++)
        g->got[i] = store_next_generation(g->st);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_generations_unique_and_increasing(void **state)
{
    fixture *fx = *state;
    fx->st = tst_open(fx->dir);
    static gen_worker w[GEN_THREADS];
    pthread_t t[GEN_THREADS];
    for (int i = 0; i < GEN_THREADS; i++) {
        w[i].st = fx->st;
        assert_int_equal(pthread_create(&t[i], NULL, gen_main, &w[i]), 0);
    }
    static int64_t all[GEN_THREADS * GEN_EACH];
    for (int i = 0; i < GEN_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        for (int k = 1; k < GEN_EACH; k++)
            assert_true(w[i].got[k] > w[i].got[k - 1]);   /* increasing in each thread */
        memcpy(all + i * GEN_EACH, w[i].got, sizeof w[i].got);
    }
    qsort(all, GEN_THREADS * GEN_EACH, sizeof *all, cmp_i64);
    assert_true(all[0] > 0);
    for (int k = 1; k < GEN_THREADS * GEN_EACH; k++)
        if (all[k] == all[k - 1])
            fail_msg("generation %lld handed out twice", (long long)all[k]);
    int64_t max = all[GEN_THREADS * GEN_EACH - 1];

    /* a prompt keeps one of them; the next mounts start above everything seen */
    prompt_attrs a = {.mode = 0644};
    rf_err err;
    assert_int_equal(sp_install(fx->st, "t/p", "x", 1, 1, max, PS_PENDING, &a, 1, &err), 0);
    store_close(fx->st);
    fx->st = tst_open(fx->dir);
    int64_t next = store_next_generation(fx->st);
    assert_true(next > max);
    /* a row with a generation above the recorded high-water mark (an import, an older
     * binary) still pushes the next mount past it */
    int64_t far = next + (1LL << 40);
    assert_int_equal(sp_install(fx->st, "t/q", "y", 1, 2, far, PS_PENDING, &a, 1, &err), 0);
    store_close(fx->st);
    fx->st = tst_open(fx->dir);
    assert_true(store_next_generation(fx->st) > far);
}

/* ---- readers ---- */

static void test_readers(void **state)
{
    fixture *fx = *state;
    fx->st = tst_open(fx->dir);
    rf_err err;
    store_conn *a = store_reader(fx->st, &err);
    store_conn *b = store_reader(fx->st, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    /* statements are cached per connection by the address of their text */
    static const char sql[] = "SELECT count(*) FROM kv";
    sqlite3_stmt *s1 = store_stmt(a, sql, &err);
    assert_non_null(s1);
    assert_ptr_equal(store_stmt(a, sql, &err), s1);
    assert_ptr_not_equal(store_stmt(b, sql, &err), s1);
    /* bad SQL is an error value, not a crash */
    static const char bad[] = "SELECT zzz FROM nowhere";
    rf_err_clear(&err);
    assert_null(store_stmt(a, bad, &err));
    assert_int_not_equal(err.code, 0);
    if (!strstr(err.msg, "nowhere"))
        fail_msg("message: %s", err.msg);

    /* a reader inside a read transaction keeps its snapshot (WAL) ... */
    assert_int_equal(sqlite3_exec(store_conn_db(a), "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    s1 = store_stmt(a, sql, &err);
    assert_int_equal(sqlite3_step(s1), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s1, 0), 0);
    sqlite3_reset(s1);
    sl_kv_put(fx->st, "x", "1");
    assert_int_equal(store_flush(fx->st), 0);
    s1 = store_stmt(a, sql, &err);
    assert_int_equal(sqlite3_step(s1), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s1, 0), 0);
    sqlite3_reset(s1);
    /* ... and others see the commit at once */
    sqlite3_stmt *s2 = store_stmt(b, sql, &err);
    assert_int_equal(sqlite3_step(s2), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s2, 0), 1);
    sqlite3_reset(s2);
    store_reader_done(fx->st, b);
    /* giving a reader back ends what it left open; the pool hands it out again */
    store_reader_done(fx->st, a);
    store_conn *again = store_reader(fx->st, &err);
    assert_ptr_equal(again, a);
    assert_true(sqlite3_get_autocommit(store_conn_db(again)));
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM kv", -1), 1);
    /* readers cannot write */
    assert_int_not_equal(sqlite3_exec(store_conn_db(again), "DELETE FROM kv", NULL, NULL, NULL),
                         SQLITE_OK);
    store_reader_done(fx->st, again);
    store_reader_done(fx->st, NULL);       /* NULL is ignored */
}

static void test_store_errno(void **state)
{
    (void)state;
    assert_int_equal(store_errno(SQLITE_OK), 0);
    assert_int_equal(store_errno(SQLITE_FULL), ENOSPC);
    assert_int_equal(store_errno(SQLITE_READONLY), EROFS);
    assert_int_equal(store_errno(SQLITE_READONLY_DBMOVED), EROFS);
    assert_int_equal(store_errno(SQLITE_IOERR_WRITE), EIO);
    assert_int_equal(store_errno(SQLITE_IOERR_FSYNC), EIO);
    assert_int_equal(store_errno(SQLITE_NOMEM), ENOMEM);
    assert_int_equal(store_errno(SQLITE_CONSTRAINT_UNIQUE), EEXIST);
    assert_int_equal(store_errno(SQLITE_TOOBIG), EFBIG);
    assert_int_equal(store_errno(SQLITE_BUSY), EBUSY);
    assert_int_equal(store_errno(SQLITE_CORRUPT), EIO);
}

/* ---- synchronous operations in one group ---- */

/* Holds the writer inside its group until released, so that what is submitted
 * meanwhile lands in the next group together. */
typedef struct gate_op {
    store_op op;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, open;
} gate_op;

static int gate_apply(store_conn *w, store_op *op, rf_err *err)
{
    gate_op *g = (gate_op *)op;
    pthread_mutex_lock(&g->lock);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

static void gate_init(gate_op *g)
{
    memset(g, 0, sizeof *g);
    g->op.apply = gate_apply;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void gate_wait_entered(gate_op *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->entered)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_release(gate_op *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(gate_op *g)
{
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

enum { RUN_THREADS = 16, DUP_THREAD = 7, MKDIR_DUP_THREAD = 14, MKDIR_NEW_THREAD = 15 };

typedef struct run_worker {
    store *st;
    int index;
    int *ready;                /* atomic: threads about to call store_run */
    test_op op;
    int rc;
    rf_err err;
} run_worker;

static void *run_main(void *arg)
{
    run_worker *w = arg;
    rf_err_clear(&w->err);
    __atomic_add_fetch(w->ready, 1, __ATOMIC_SEQ_CST);
    if (w->index == MKDIR_DUP_THREAD || w->index == MKDIR_NEW_THREAD) {
        prompt_attrs a = {.mode = 0755};
        w->rc = sp_mkdir(w->st, w->index == MKDIR_DUP_THREAD ? "t/old" : "t/new", &a, &w->err);
        return NULL;
    }
    tst_op_init(&w->op, w->st, w->index == DUP_THREAD ? 500 : w->index, 0);
    w->rc = store_run(w->st, &w->op.op, &w->err);
    return NULL;
}

static void test_run_errors_are_their_own(void **state)
{
    fixture *fx = *state;
    fx->st = tst_open(fx->dir);
    rf_err err;
    test_op first;
    tst_op_init(&first, fx->st, 500, 0);
    assert_int_equal(store_run(fx->st, &first.op, &err), 0);
    prompt_attrs a = {.mode = 0755};
    assert_int_equal(sp_mkdir(fx->st, "t/old", &a, &err), 0);

    gate_op gate;
    gate_init(&gate);
    store_submit(fx->st, &gate.op);
    gate_wait_entered(&gate);
    int ready = 0;
    static run_worker w[RUN_THREADS];
    pthread_t t[RUN_THREADS];
    for (int i = 0; i < RUN_THREADS; i++) {
        w[i] = (run_worker){.st = fx->st, .index = i, .ready = &ready};
        assert_int_equal(pthread_create(&t[i], NULL, run_main, &w[i]), 0);
    }
    WAIT_UNTIL(__atomic_load_n(&ready, __ATOMIC_SEQ_CST) == RUN_THREADS, 10000);
    assert_int_equal(__atomic_load_n(&ready, __ATOMIC_SEQ_CST), RUN_THREADS);
    tst_sleep_ms(500);                     /* margin: each is inside store_run by now */
    store_health before;
    store_health_get(fx->st, &before);
    gate_release(&gate);
    for (int i = 0; i < RUN_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    gate_destroy(&gate);

    uint64_t group = w[0].op.group;
    for (int i = 0; i < RUN_THREADS; i++) {
        if (i == DUP_THREAD || i == MKDIR_DUP_THREAD) {
            assert_int_equal(w[i].rc, -EEXIST);
            assert_int_equal(w[i].err.code, EEXIST);
            assert_true(w[i].err.msg[0] != '\0');
        } else if (w[i].rc != 0) {
            fail_msg("thread %d: %d %s", i, w[i].rc, w[i].err.msg);
        }
        if (i != MKDIR_DUP_THREAD && i != MKDIR_NEW_THREAD && w[i].op.group != group)
            fail_msg("thread %d ran in another group (%llu, not %llu)", i,
                     (unsigned long long)w[i].op.group, (unsigned long long)group);
    }
    assert_true(group == before.groups + 1);   /* the one right after the gate's */
    /* the failed one undid only itself: every other insert is there, the old row intact */
    assert_int_equal(tst_count_t(fx->st), 1 + RUN_THREADS - 3);
    assert_int_equal(tst_query_int(fx->st, "SELECT value FROM kv WHERE key = 't.000500'", -1),
                     first.seq);
    dir_row d;
    assert_int_equal(sp_dir_get(fx->st, "t/new", &d, &err), 0);
    store_health after;
    store_health_get(fx->st, &after);
    assert_true(after.groups - before.groups <= 2);
    assert_int_equal(after.failing, 0);
}

/* ---- group commit ---- */

enum { SUBMIT_THREADS = 8, SUBMIT_EACH = 400, WAIT_THREADS = 16, WAIT_EACH = 40 };

typedef struct submit_worker {
    store *st;
    int base;
    int synchronous;
    int failures;
} submit_worker;

static void *submit_main(void *arg)
{
    submit_worker *w = arg;
    int n = w->synchronous ? WAIT_EACH : SUBMIT_EACH;
    for (int i = 0; i < n; i++) {
        if (w->synchronous) {
            test_op op;
            tst_op_init(&op, w->st, w->base + i, STORE_OP_DURABLE);
            rf_err err;
            if (store_run(w->st, &op.op, &err) != 0)
                w->failures++;
        } else {
            test_op *op = malloc(sizeof *op);
            if (!op) {
                w->failures++;
                continue;
            }
            tst_op_init(op, w->st, w->base + i, 0);
            op->free_in_done = 1;
            store_submit(w->st, &op->op);
        }
    }
    return NULL;
}

static uint64_t run_submitters(store *st, int nthreads, int synchronous, int base, uint64_t *ops)
{
    store_health before, after;
    store_health_get(st, &before);
    pthread_t t[WAIT_THREADS];
    submit_worker w[WAIT_THREADS];
    for (int i = 0; i < nthreads; i++) {
        w[i] = (submit_worker){st, base + i * 1000, synchronous, 0};
        assert_int_equal(pthread_create(&t[i], NULL, submit_main, &w[i]), 0);
    }
    for (int i = 0; i < nthreads; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(store_flush(st), 0);
    store_health_get(st, &after);
    *ops = after.ops - before.ops;
    return after.groups - before.groups;
}

static void test_group_commit(void **state)
{
    fixture *fx = *state;
    fx->st = tst_open(fx->dir);
    uint64_t ops = 0;
    uint64_t groups = run_submitters(fx->st, SUBMIT_THREADS, 0, 0, &ops);
    uint64_t n = SUBMIT_THREADS * SUBMIT_EACH;
    print_message("group commit: %llu submitted ops in %llu groups\n", (unsigned long long)ops,
                  (unsigned long long)groups);
    assert_int_equal(ops, n);
    assert_true(groups >= 1 && groups * 4 <= n);
    assert_int_equal(tst_count_t(fx->st), (int64_t)n);

    /* threads that each wait for a durable operation share the groups' WAL syncs */
    groups = run_submitters(fx->st, WAIT_THREADS, 1, 100000, &ops);
    uint64_t m = WAIT_THREADS * WAIT_EACH;
    print_message("group commit: %llu waited-for durable ops in %llu groups\n",
                  (unsigned long long)ops, (unsigned long long)groups);
    assert_int_equal(ops, m);
    assert_true(groups >= 1 && groups * 2 <= m);
    assert_int_equal(tst_count_t(fx->st), (int64_t)(n + m));
}

/* ---- store_direct: before the writer starts ---- */

static int direct_fn(store_conn *w, void *ud, rf_err *err)
{
    int *calls = ud;
    (*calls)++;
    char *msg = NULL;
    if (sqlite3_exec(store_conn_db(w), "INSERT OR REPLACE INTO kv VALUES('t.direct', '1', 0)", NULL, NULL,
                     &msg) != SQLITE_OK) {
        rf_err_set(err, EIO, "%s", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return *calls > 1 ? rf_err_set(err, EINVAL, "second call fails") : 0;
}

static void test_direct(void **state)
{
    fixture *fx = *state;
    rf_err err;
    rf_err_clear(&err);
    fx->st = store_open(fx->dir, &err);
    assert_non_null(fx->st);
    int calls = 0;
    assert_int_equal(store_direct(fx->st, direct_fn, &calls, &err), 0);
    /* a failing fn rolls its transaction back */
    assert_int_equal(store_direct(fx->st, direct_fn, &calls, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(tst_count_t(fx->st), 1);
    assert_int_equal(store_start(fx->st, &err), 0);
    assert_int_equal(store_direct(fx->st, direct_fn, &calls, &err), -1);
    assert_int_equal(err.code, EBUSY);
    assert_int_equal(calls, 2);
}

/* ---- the fault VFS forwards everything ---- */

/* The same workload on a database through vfs; a digest of what it ends with in out. */
static void workload(const char *path, const char *vfs, char *out, size_t len)
{
    sqlite3 *db = NULL, *other = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    assert_int_equal(sqlite3_open_v2(path, &db, flags, vfs), SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(path, &other, flags, vfs), SQLITE_OK);
    sqlite3_vfs *used = NULL;
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &used),
                     SQLITE_OK);
    assert_ptr_equal(used, sqlite3_vfs_find(vfs));
#define EXEC(d, sql) do {                                                               \
        char *m_ = NULL;                                                                \
        if (sqlite3_exec(d, sql, NULL, NULL, &m_) != SQLITE_OK)                         \
            fail_msg("%s [%s]: %s", sql, vfs ? vfs : "default", m_ ? m_ : "?");         \
    } while (0)
    /* WAL with memory-mapped reads (xShm*, xFetch/xUnfetch), spills, overflow pages */
    EXEC(db, "PRAGMA journal_mode=WAL; PRAGMA mmap_size=4194304; PRAGMA cache_size=10;"
             "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB, c TEXT);"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
             " INSERT INTO t SELECT i, zeroblob(i % 17 * 97), printf('row %d', i * 7919 % 3001)"
             " FROM n;"
             "CREATE INDEX t_c ON t(c);");
    /* the other connection sees it through the shared memory index; writers exclude
     * each other (xLock, xCheckReservedLock), a busy handler sleeps (xSleep) */
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(other, "SELECT count(*), sum(length(b)) FROM t", -1, &s,
                                        NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 3000);
    sqlite3_finalize(s);
    EXEC(db, "BEGIN IMMEDIATE; UPDATE t SET c = c || '!' WHERE a % 3 = 0");
    sqlite3_busy_timeout(other, 30);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL) & 0xff, SQLITE_BUSY);
    EXEC(db, "COMMIT");
    EXEC(other, "DELETE FROM t WHERE a % 5 = 0");
    int persist = -1;
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist),
                     SQLITE_OK);
    assert_int_equal(persist, 0);
    int log = -1, ckpt = -1;
    assert_int_equal(sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &ckpt),
                     SQLITE_OK);
    assert_int_equal(log, 0);
    sqlite3_close(other);
    /* a rollback journal (xDelete, xAccess, xTruncate), temporary files, VACUUM */
    EXEC(db, "PRAGMA journal_mode=DELETE; PRAGMA temp_store=FILE;"
             "BEGIN; UPDATE t SET b = zeroblob(300) WHERE a % 7 = 0; COMMIT;"
             "CREATE TEMP TABLE sorted AS SELECT c, a FROM t ORDER BY c DESC, a;"
             "VACUUM;");
    /* the clock (xCurrentTimeInt64) */
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT CAST(strftime('%s','now') AS INTEGER)", -1,
                                        &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    long long now = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    assert_true(llabs(now - (long long)time(NULL)) <= 5);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT integrity_check FROM pragma_integrity_check),"
                                        " count(*), sum(length(b)), group_concat(c, ','),"
                                        " (SELECT count(*) FROM sorted),"
                                        " (SELECT page_count FROM pragma_page_count) FROM t",
                                        -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    const char *concat = (const char *)sqlite3_column_text(s, 3);
    unsigned long long h = 1469598103934665603ULL;      /* FNV-1a of the rows' text */
    for (const char *p = concat; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(out, len, "%s %d %lld %llx %d %d", sqlite3_column_text(s, 0),
             sqlite3_column_int(s, 1), (long long)sqlite3_column_int64(s, 2), h,
             sqlite3_column_int(s, 4), sqlite3_column_int(s, 5));
    sqlite3_finalize(s);
    sqlite3_close(db);
#undef EXEC
}

static void test_faultvfs_forwards(void **state)
{
    fixture *fx = *state;
    assert_int_equal(faultvfs_register(), SQLITE_OK);
    assert_int_equal(faultvfs_register(), SQLITE_OK);   /* idempotent */
    char plain[128], shim[128], want[256], got[256];
    snprintf(plain, sizeof plain, "%s/plain.db", fx->dir);
    snprintf(shim, sizeof shim, "%s/shim.db", fx->dir);
    workload(plain, NULL, want, sizeof want);
    workload(shim, FAULTVFS_NAME, got, sizeof got);
    print_message("workload digest: %s\n", want);
    assert_non_null(strstr(want, "ok 2400 "));
    assert_string_equal(got, want);
    struct stat a, b;
    assert_int_equal(stat(plain, &a), 0);
    assert_int_equal(stat(shim, &b), 0);
    assert_int_equal(a.st_size, b.st_size);

    /* and the fault itself, on a connection of its own */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(shim, &db, SQLITE_OPEN_READWRITE, FAULTVFS_NAME), SQLITE_OK);
    faultvfs_set("full");
    assert_int_equal(sqlite3_exec(db, "INSERT INTO t(c) VALUES('x')", NULL, NULL, NULL), SQLITE_FULL);
    faultvfs_set("eio");
    assert_int_equal(sqlite3_exec(db, "INSERT INTO t(c) VALUES('x')", NULL, NULL, NULL) & 0xff,
                     SQLITE_IOERR);
    faultvfs_set("bogus");                 /* an unknown mode is no fault */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO t(c) VALUES('x')", NULL, NULL, NULL), SQLITE_OK);
    faultvfs_set(NULL);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO t(c) VALUES('y')", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_open_close_reopen),
        T(test_open_refuses_a_file),
        T(test_lock_refuses_second_open),
        T(test_newer_schema_refused),
        T(test_newer_schema_with_other_tables),
        T(test_generations_unique_and_increasing),
        T(test_readers),
        cmocka_unit_test(test_store_errno),
        T(test_run_errors_are_their_own),
        T(test_group_commit),
        T(test_direct),
        T(test_faultvfs_forwards),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
