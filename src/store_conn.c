/* store_conn.c — SQLite connections to the state database: opened with the settings
 * routefs relies on (busy timeout, cache size, the fault-injecting VFS), a small cache of
 * prepared statements per connection keyed by the SQL text's address, and the pool of
 * idle read-only connections that readers borrow (store_reader).  Part of the store
 * module (store_int.h). */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultvfs.h"
#include "log.h"

void store_conn_close(store_conn *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ncache; i++)
        sqlite3_finalize(c->cache[i].stmt);
    sqlite3_close_v2(c->db);
    free(c);
}

int store_conn_exec(store_conn *c, const char *sql, rf_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        c->last_rc = rc;
        rf_err_set(err, store_errno(rc), "state store: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

store_conn *store_conn_open(store *st, int readonly, rf_err *err)
{
    store_conn *c = calloc(1, sizeof *c);
    if (!c) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(st->db_path, &c->db, flags, FAULTVFS_NAME);
    if (rc != SQLITE_OK) {
        rf_err_set(err, store_errno(rc), "state store %s: %s", st->db_path,
                   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        store_conn_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 5000);
    sqlite3_extended_result_codes(c->db, 1);
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-%d;%s",
             readonly ? READER_CACHE_KIB : WRITER_CACHE_KIB,
             readonly ? "" : " PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=4000;");
    if (store_conn_exec(c, pragmas, err) < 0) {
        store_conn_close(c);
        return NULL;
    }
    return c;
}

sqlite3 *store_conn_db(store_conn *c)
{
    return c->db;
}

sqlite3_stmt *store_stmt(store_conn *c, const char *sql, rf_err *err)
{
    for (size_t i = 0; i < c->ncache; i++) {
        if (c->cache[i].sql == sql) {
            sqlite3_reset(c->cache[i].stmt);
            sqlite3_clear_bindings(c->cache[i].stmt);
            return c->cache[i].stmt;
        }
    }
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
    if (rc != SQLITE_OK) {
        store_fail(c, rc, err, "prepare");
        return NULL;
    }
    if (c->ncache < STMT_CACHE) {
        c->cache[c->ncache].sql = sql;
        c->cache[c->ncache].stmt = stmt;
        c->ncache++;
    } else {
        /* Never expected (the SQL is a fixed set): keep working, slower. */
        LOG_WARN("state store: statement cache full");
        c->cache[STMT_CACHE - 1].sql = NULL;
        sqlite3_finalize(c->cache[STMT_CACHE - 1].stmt);
        c->cache[STMT_CACHE - 1].sql = sql;
        c->cache[STMT_CACHE - 1].stmt = stmt;
    }
    return stmt;
}

store_conn *store_reader(store *st, rf_err *err)
{
    pthread_mutex_lock(&st->rlock);
    store_conn *c = st->idle_readers;
    if (c)
        st->idle_readers = c->next;
    pthread_mutex_unlock(&st->rlock);
    if (c) {
        c->next = NULL;
        return c;
    }
    return store_conn_open(st, 1, err);
}

void store_reader_done(store *st, store_conn *c)
{
    if (!c)
        return;
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);  /* a reader left a txn open */
    pthread_mutex_lock(&st->rlock);
    c->next = st->idle_readers;
    st->idle_readers = c;
    pthread_mutex_unlock(&st->rlock);
}

