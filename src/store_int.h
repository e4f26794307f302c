/* store_int.h — what store.c (the writer thread, health, open/close) shares with
 * store_conn.c (connections, their statement caches, the reader pool); not for other
 * modules, which see store.h.  The locking rules are in store.c's comment. */
#ifndef RF_STORE_INT_H
#define RF_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "store.h"

#define STMT_CACHE 64
#define WRITER_CACHE_KIB 8192
#define READER_CACHE_KIB 1024

struct store_conn {
    sqlite3 *db;
    struct {
        const char *sql;           /* static text: the cache key is its address */
        sqlite3_stmt *stmt;
    } cache[STMT_CACHE];
    size_t ncache;
    int last_rc;                   /* the SQLite code store_fail last saw */
    int sync_full;                 /* writer: PRAGMA synchronous is FULL (else NORMAL) */
    store_conn *next;              /* pool link */
};

struct store {
    char *path;                    /* absolute state directory */
    char *db_path;
    int dirfd, lockfd;

    pthread_mutex_t lock;
    pthread_cond_t work;           /* the writer has something to do */
    pthread_cond_t applied;        /* a group finished: store_run / store_flush waiters */
    store_op *head, *tail;
    uint64_t submitted, finished;  /* sequence numbers, for store_flush */
    int stopping;
    int hurry;                     /* a thread waits for the queue: commit without gathering */
    int gathering;                 /* the writer lets a group gather (GATHER_US) */
    pthread_t thread;
    int thread_started;
    store_conn *writer;

    /* health (lock) */
    int failing, fail_code;
    char why[512];
    int64_t since_ms;
    size_t held, held_paid;   /* queued ops while failing; of them STORE_OP_PAID */
    uint64_t groups, ops, failures;
    void (*listener)(int failing, void *ud);
    void *listener_ud;

    pthread_mutex_t rlock;
    store_conn *idle_readers;

    int64_t generation;            /* atomic */

    /* keys of submitted operations not yet done (store_settle): key -> count */
    pthread_mutex_t klock;
    struct hmap *pending;
    size_t pending_n;              /* ops counted in pending, or untracked (no memory) */
    size_t untracked;              /* of those, not in the map: every key settles */

    struct store_paths *paths;     /* store_paths.c; NULL before store_start or without memory */
};

/* store_keys.c: the keys of queued operations (store_settle) */
int store_keys_init(store *st);                   /* 0, or -1: out of memory */
void store_keys_free(store *st);
void store_keys_add(store *st, store_op *op);     /* store_submit, before queueing */
void store_keys_del(store *st, store_op *op);     /* the writer, before op->done */

/* store_paths.c: the filter of prompt paths (store_path_absent) */
void store_paths_start(store *st);   /* store_start, before the writer runs */
void store_paths_stop(store *st);    /* store_close, after the writer has stopped */

/* store_conn.c */
store_conn *store_conn_open(store *st, int readonly, rf_err *err);   /* NULL with err */
void store_conn_close(store_conn *c);                                 /* NULL is a no-op */
int store_conn_exec(store_conn *c, const char *sql, rf_err *err);

#endif
