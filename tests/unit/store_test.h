/* store_test.h — helpers shared by the state store's unit tests (test_store*.c,
 * test_budget*.c, test_prices.c): temporary state directories, a started store, bounded
 * waits, queries on a reader connection, owned ledger rows.
 *
 * Include after <cmocka.h>; every function is static, each test binary has its copy. */
#ifndef RF_STORE_TEST_H
#define RF_STORE_TEST_H

#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_ledger.h"

#define TST_UNUSED __attribute__((unused)) static

TST_UNUSED int tst_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove a directory tree (a test's state directory). */
TST_UNUSED void tst_rmrf(const char *dir)
{
    nftw(dir, tst_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory /tmp/rfs-TAG.XXXXXX in buf. */
TST_UNUSED void tst_tempdir(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/rfs-%s.XXXXXX", tag);
    if (!mkdtemp(buf))
        fail_msg("mkdtemp %s: %s", buf, strerror(errno));
}

TST_UNUSED int64_t tst_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

TST_UNUSED int64_t tst_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

TST_UNUSED void tst_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Poll cond every 5 ms until it holds or timeout_ms passed; the caller asserts cond. */
#define WAIT_UNTIL(cond, timeout_ms)                                                    \
    do {                                                                                \
        int64_t wait_end_ = tst_mono_ms() + (timeout_ms);                               \
        while (!(cond) && tst_mono_ms() < wait_end_)                                    \
            tst_sleep_ms(5);                                                            \
    } while (0)

/* store_open + store_start, failing the test with the message. */
TST_UNUSED store *tst_open(const char *dir)
{
    rf_err err;
    rf_err_clear(&err);
    store *st = store_open(dir, &err);
    if (!st)
        fail_msg("store_open %s: %s", dir, err.msg);
    if (store_start(st, &err) < 0)
        fail_msg("store_start: %s", err.msg);
    return st;
}

/* The first column of the first row of sql (an integer), on a reader; dflt when none. */
TST_UNUSED int64_t tst_query_int(store *st, const char *sql, int64_t dflt)
{
    rf_err err;
    store_conn *c = store_reader(st, &err);
    if (!c)
        fail_msg("store_reader: %s", err.msg);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(store_conn_db(c), sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(store_conn_db(c)));
    int64_t v = dflt;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    store_reader_done(st, c);
    return v;
}

/* Run sql on a connection of its own to STATE/routefs.db (the store closed or idle). */
TST_UNUSED void tst_raw_exec(const char *dir, const char *sql)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, STORE_DB_NAME);
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        fail_msg("open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
}

TST_UNUSED char *tst_dup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        fail_msg("out of memory");
    return d;
}

/* A ledger row with owned copies of the strings; cost_usd < 0 = unpriced. */
TST_UNUSED ledger_row tst_row(const char *ref, int64_t at_ms, const char *tier, const char *tag,
                              const char *provider, const char *model, const char *upstream,
                              double cost_usd, int estimated)
{
    ledger_row r = {
        .ref = tst_dup(ref), .at_ms = at_ms, .tier = tst_dup(tier), .tag = tst_dup(tag),
        .provider = tst_dup(provider), .model = tst_dup(model), .upstream = tst_dup(upstream),
        .has_cost = cost_usd >= 0,
        .cost_nusd = cost_usd >= 0 ? (int64_t)(cost_usd * 1e9 + 0.5) : 0,
        .estimated = estimated, .note = estimated ? tst_dup("no usage reported") : NULL,
        .prompt_tokens = 100, .completion_tokens = 20,
    };
    return r;
}

/* Outcome of a job_commit, filled by tst_commit_done (writer thread). */
typedef struct tst_outcome {
    int calls;              /* atomic */
    int status;
    int installed;
} tst_outcome;

TST_UNUSED void tst_commit_done(job_commit *c, int status, const rf_err *err)
{
    (void)err;
    tst_outcome *o = c->ud;
    if (!o)
        return;
    o->status = status;
    o->installed = c->installed;
    __atomic_add_fetch(&o->calls, 1, __ATOMIC_SEQ_CST);
}

TST_UNUSED int tst_calls(tst_outcome *o)
{
    return __atomic_load_n(&o->calls, __ATOMIC_SEQ_CST);
}

/* ---- a test operation: inserts kv row "t.KEY" (a constraint error when it exists) ---- */

typedef struct test_op {
    store_op op;            /* first */
    store *st;
    int key;
    int64_t seq;            /* the value stored: g_apply_seq at its (last) apply */
    uint64_t group;         /* store_health.groups seen inside apply: its group's identity */
    int done_calls;         /* atomic */
    int status;
    int done_order;         /* when its done ran, counting from 1 (tst_done_seq) */
    int free_in_done;
} test_op;

static int64_t tst_apply_seq;   /* writer thread only */
static int tst_done_seq;        /* atomic */

static const char TST_SQL_INSERT[] = "INSERT INTO kv(key, value, updated_ms) VALUES(?1, ?2, 0)";

TST_UNUSED int tst_op_apply(store_conn *w, store_op *op, rf_err *err)
{
    test_op *t = (test_op *)op;
    store_health h;
    store_health_get(t->st, &h);
    t->group = h.groups;
    t->seq = ++tst_apply_seq;
    sqlite3_stmt *s = store_stmt(w, TST_SQL_INSERT, err);
    if (!s)
        return -1;
    char key[32], value[32];
    snprintf(key, sizeof key, "t.%06d", t->key);
    snprintf(value, sizeof value, "%lld", (long long)t->seq);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : store_fail(w, rc, err, "test insert");
}

TST_UNUSED void tst_op_done(store_op *op, int status, const rf_err *err)
{
    test_op *t = (test_op *)op;
    (void)err;
    t->status = status;
    t->done_order = __atomic_add_fetch(&tst_done_seq, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&t->done_calls, 1, __ATOMIC_SEQ_CST);
    if (t->free_in_done)
        free(t);
}

TST_UNUSED void tst_op_init(test_op *t, store *st, int key, unsigned flags)
{
    memset(t, 0, sizeof *t);
    t->op.apply = tst_op_apply;
    t->op.done = tst_op_done;
    t->op.flags = flags;
    t->st = st;
    t->key = key;
}

/* How many "t.*" rows the store holds. */
TST_UNUSED int64_t tst_count_t(store *st)
{
    return tst_query_int(st, "SELECT count(*) FROM kv WHERE key LIKE 't.%'", -1);
}

#endif
