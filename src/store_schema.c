/* store_schema.c — see store_schema.h.
 *
 * The tables (docs for people who open the database with the sqlite3 shell are in
 * README.md, "The state directory"):
 *   info        name -> value: schema version, the generation high-water mark
 *   dirs        tag directories inside tiers, with their attributes
 *   prompts     one row per prompt: its bytes and attributes, its job's state and park
 *               schedule, and, once finished, its results (.out bytes, meta, .err)
 *   ledger      one row per billed request; spend_days its totals per UTC day
 *   activity    one line per finished job (activity.jsonl), with its byte offset
 *   provider_days  attempts, failures, fallbacks per provider and UTC day, with a
 *               latency histogram (b0..b9: see STORE_LATENCY_BOUNDS_MS in store_ledger.h)
 *   events      breaker openings and closings, store failures (report.html)
 *   prices      published (OpenRouter) and observed prices per model
 *   kv          small named values (the OpenRouter key's limits, ...) */
#include "store_schema.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS dirs("
    "  path TEXT PRIMARY KEY, parent TEXT NOT NULL, name TEXT NOT NULL,"
    "  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
    "  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS dirs_by_parent ON dirs(parent);"
    "CREATE TABLE IF NOT EXISTS prompts("
    "  id INTEGER PRIMARY KEY,"
    "  path TEXT NOT NULL UNIQUE, dir TEXT NOT NULL, name TEXT NOT NULL,"
    "  gen INTEGER NOT NULL, state INTEGER NOT NULL, writing INTEGER NOT NULL DEFAULT 0,"
    "  size INTEGER NOT NULL, hash INTEGER NOT NULL,"
    "  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
    "  atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL DEFAULT 0,"
    "  park_count INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    "  sent INTEGER NOT NULL DEFAULT 0, out_size INTEGER NOT NULL DEFAULT 0,"
    "  meta TEXT, err TEXT, out BLOB, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS prompts_by_dir ON prompts(dir);"
    "CREATE UNIQUE INDEX IF NOT EXISTS prompts_by_gen ON prompts(gen);"
    "CREATE INDEX IF NOT EXISTS prompts_unfinished ON prompts(state) WHERE state <= 2 OR writing;"
    "CREATE TABLE IF NOT EXISTS ledger("
    "  id INTEGER PRIMARY KEY, ref TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    "  path TEXT, tier TEXT NOT NULL, tag TEXT, provider TEXT NOT NULL, model TEXT NOT NULL,"
    "  upstream TEXT, cost_nusd INTEGER, estimated INTEGER NOT NULL DEFAULT 0, note TEXT,"
    "  prompt_tokens INTEGER, completion_tokens INTEGER, host TEXT);"
    "CREATE INDEX IF NOT EXISTS ledger_by_time ON ledger(at_ms);"
    "CREATE TABLE IF NOT EXISTS spend_days("
    "  day INTEGER NOT NULL, tier TEXT NOT NULL, tag TEXT NOT NULL, provider TEXT NOT NULL,"
    "  model TEXT NOT NULL, upstream TEXT NOT NULL,"
    "  nusd INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,"
    "  unpriced INTEGER NOT NULL DEFAULT 0, estimated INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(day, tier, tag, provider, model, upstream)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS activity("
    "  seq INTEGER PRIMARY KEY, off INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
    "  line TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS activity_by_off ON activity(off);"
    "CREATE TABLE IF NOT EXISTS provider_days("
    "  day INTEGER NOT NULL, provider TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,"
    "  fallbacks INTEGER NOT NULL DEFAULT 0, latency_ms_sum INTEGER NOT NULL DEFAULT 0,"
    "  b0 INTEGER NOT NULL DEFAULT 0, b1 INTEGER NOT NULL DEFAULT 0,"
    "  b2 INTEGER NOT NULL DEFAULT 0, b3 INTEGER NOT NULL DEFAULT 0,"
    "  b4 INTEGER NOT NULL DEFAULT 0, b5 INTEGER NOT NULL DEFAULT 0,"
    "  b6 INTEGER NOT NULL DEFAULT 0, b7 INTEGER NOT NULL DEFAULT 0,"
    "  b8 INTEGER NOT NULL DEFAULT 0, b9 INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(day, provider)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events("
    "  id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  provider TEXT, model TEXT, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS events_by_time ON events(at_ms);"
    "CREATE TABLE IF NOT EXISTS prices("
    "  model TEXT NOT NULL, provider TEXT NOT NULL, source TEXT NOT NULL,"
    "  prompt_per_m REAL NOT NULL, completion_per_m REAL NOT NULL,"
    "  request_usd REAL NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(model, provider, source)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS kv("
    "  key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;";

/* Each mount takes a block of generations: unique across mounts without a write per job. */
#define GENERATION_BLOCK (1LL << 32)

static int exec_sql(sqlite3 *db, const char *sql, rf_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        rf_err_set(err, store_errno(rc), "state store: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int64_t query_int(sqlite3 *db, const char *sql, int64_t dflt)
{
    sqlite3_stmt *s = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW &&
        sqlite3_column_type(s, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

int store_schema_ensure(store_conn *wc, int64_t *generation, rf_err *err)
{
    sqlite3 *db = store_conn_db(wc);
    /* WAL: readers never wait for the writer; the mode is kept in the file. */
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    const char *mode = rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW
                           ? (const char *)sqlite3_column_text(s, 0) : NULL;
    int wal = mode && !strcmp(mode, "wal");
    sqlite3_finalize(s);
    if (!wal)
        return rf_err_set(err, EIO, "state store: cannot switch the database to WAL mode: %s",
                          sqlite3_errmsg(db));
    if (exec_sql(db, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    /* The version first: a newer routefs's tables may not take our CREATE statements, and
     * the message must say why (a fresh database has no info table yet: version 0). */
    int64_t version = query_int(db, "SELECT value FROM info WHERE key='schema_version'", 0);
    if (version > STORE_SCHEMA_VERSION) {
        rf_err_set(err, EINVAL,
                   "state store: schema version %lld is newer than this routefs (%d): upgrade "
                   "routefs", (long long)version, STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (exec_sql(db, SCHEMA, err) < 0)
        goto fail;
    int64_t base = query_int(db, "SELECT value FROM info WHERE key='generation'", 0);
    int64_t used = query_int(db, "SELECT max(gen) FROM prompts", 0);
    if (used > base)
        base = used;
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO info(key, value) VALUES('schema_version', '%d'),"
             "('generation', '%lld')",
             STORE_SCHEMA_VERSION, (long long)(base + GENERATION_BLOCK));
    if (exec_sql(db, sql, err) < 0 || exec_sql(db, "COMMIT", err) < 0)
        goto fail;
    *generation = base;
    return 0;
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}
