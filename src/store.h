/* store.h — the state store: one SQLite database (WAL) in the state directory.
 *
 * Everything routefs must keep lives in STATE/routefs.db as rows: prompts (bytes, hash,
 * attributes, job state, park schedule) with their results (.out bytes, meta, .err),
 * tag directories, the spend ledger and its daily totals, the activity log, prices and
 * small named values.  Plain scratch files (editor temporaries, dot directories such as
 * .git) are real files under STATE/files/ (scratch.h).
 *
 * Reads: any thread, through a small pool of read-only connections (WAL readers never
 * wait for the writer).
 *
 * Writes: one writer thread owns the only write connection.  Callers hand it operations
 * (store_op); it applies every operation waiting in one transaction ("group commit"), each
 * inside a savepoint so one failing operation does not undo the others, and syncs the WAL
 * once per group when any operation in it asked to be durable.  While busy, a group
 * gathers for up to 10 ms unless a thread waits or an op is STORE_OP_URGENT.  A caller
 * either waits for its operation (store_run: FUSE requests that must report an error to
 * the shell) or is called back (store_submit: a closed prompt's bytes, results of paid
 * answers, state changes); a read of a key with submitted writes still queued waits for
 * them (store_settle).
 *
 * When the disk fails (full, I/O error, read-only) the store becomes *failing*, a visible
 * state: store_admit() refuses new work with ENOSPC/EIO, operations marked STORE_OP_HELD
 * stay queued in memory, in order, and are retried with backoff until the disk works
 * again; then the health listener is told and everything held is committed.
 *
 * Lock order: the store's locks are leaves: never call into jobs (or take any other lock)
 * from an apply function; done callbacks run on the writer thread with no store lock. */
#ifndef RF_STORE_H
#define RF_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

typedef struct store store;
typedef struct store_conn store_conn;
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

#define STORE_DB_NAME "routefs.db"

/* Open (creating as needed) the state directory and its database: take the directory's
 * lock (two daemons never share one), create or upgrade the schema.  Reads work at once;
 * writes once store_start has started the writer thread (after the daemon forks). */
store *store_open(const char *dir, rf_err *err);
int store_start(store *st, rf_err *err);
/* Before store_start only: run fn in one transaction on the writer connection (the
 * import of an older state directory). */
int store_direct(store *st, int (*fn)(store_conn *w, void *ud, rf_err *err), void *ud,
                 rf_err *err);
/* Commit what is queued (bounded wait when failing), stop the writer, close. */
void store_close(store *st);
const char *store_path(const store *st);   /* the state directory, absolute */
int store_dirfd(const store *st);          /* an O_DIRECTORY fd of it */

/* ---- health ---- */

typedef struct store_health {
    int failing;          /* writes fail: new work is refused */
    int code;             /* ENOSPC, EIO or EROFS while failing */
    char why[512];        /* one line, e.g. "database or disk is full" */
    int64_t since_ms;     /* wall clock when it started failing (0 = ok) */
    size_t held;          /* operations held in memory until the disk works again */
    size_t held_paid;     /* of them, paid answers with their bills (STORE_OP_PAID) */
    uint64_t groups;      /* transactions committed since open */
    uint64_t ops;         /* operations committed since open */
    uint64_t failures;    /* times the store went from ok to failing */
} store_health;

void store_health_get(store *st, store_health *h);
/* 0 when new work may start; -ENOSPC / -EIO / -EROFS while failing. */
int store_admit(store *st);
/* Called (from the writer thread, no lock held) whenever failing changes. */
void store_set_health_listener(store *st, void (*fn)(int failing, void *ud), void *ud);

/* ---- connections and statements ---- */

/* A read-only connection from the pool; put it back after use.  NULL with err. */
store_conn *store_reader(store *st, rf_err *err);
void store_reader_done(store *st, store_conn *c);
/* The connection's prepared (and reset) statement for sql, which must be a string with
 * static storage: statements are cached by its address.  NULL with err. */
sqlite3_stmt *store_stmt(store_conn *c, const char *sql, rf_err *err);
sqlite3 *store_conn_db(store_conn *c);

/* An SQLite result code as an errno value: SQLITE_FULL -> ENOSPC, SQLITE_READONLY ->
 * EROFS, I/O errors -> EIO, SQLITE_NOMEM -> ENOMEM, constraint -> EEXIST, else EIO. */
int store_errno(int sqlite_rc);
/* Fill err from the connection's last error; returns -1. */
int store_fail(store_conn *c, int rc, rf_err *err, const char *what);

/* ---- writes ---- */

enum {
    STORE_OP_DURABLE = 1,   /* sync the WAL when its group commits (answers, ledger) */
    STORE_OP_HELD = 2,      /* never dropped: held and retried while the store fails */
    STORE_OP_ONE_CHANGE = 4,  /* apply changes rows with one statement, which SQLite undoes
                                 by itself when it fails: no savepoint around it */
    STORE_OP_PAID = 8,      /* carries a paid answer and its bill: counted apart in health */
    STORE_OP_URGENT = 16,   /* its done callback starts work now (a job with a free slot):
                               its group does not gather */
};

typedef struct store_op store_op;
struct store_op {
    /* Inside the group's transaction, on the writer connection.  0, or -1 with err
     * (err->code an errno).  Must not block or take locks other than its own. */
    int (*apply)(store_conn *w, store_op *op, rf_err *err);
    /* After the group committed (status 0) or the operation failed (status -errno,
     * err set).  On the writer thread for store_submit; NULL is allowed.  The op may be
     * freed here. */
    void (*done)(store_op *op, int status, const rf_err *err);
    unsigned flags;
    /* store_submit: the path this op writes, or NULL.  Until the op is done, reads of it
     * wait for the queue (store_settle).  Borrowed from the op: it must live until done. */
    const char *key;
    /* internal */
    store_op *next;
    int status;
    rf_err err;
    int waiting;            /* store_run: a thread waits for it */
    int tracked;            /* key pending: 0 no, 1 in the map, 2 counted untracked */
};

/* Queue op for the writer; op->done reports the outcome.  Never blocks on the disk. */
void store_submit(store *st, store_op *op);
/* Queue op and wait until it has committed or failed: 0 or -errno with err.  While the
 * store is failing, an op without STORE_OP_HELD fails at once with the failing code. */
int store_run(store *st, store_op *op, rf_err *err);
/* Wait until everything submitted so far has been applied (or failed): 0, or -errno
 * when the store is failing with work still held. */
int store_flush(store *st);
/* The same, and on the disk (the WAL synced): 0, or -errno at once while failing. */
int store_sync(store *st);

/* Read-your-writes for store_submit: a read of a key that has operations queued and not
 * yet done first waits until everything queued so far is done (store_flush); for
 * store_settle_all, when any key has.  At once on the writer thread itself (its done
 * callbacks), before store_start, and while the store is failing (held work waits for
 * the disk: reads see the store as it is). */
void store_settle(store *st, const char *key);
void store_settle_all(store *st);

/* Paths that surely have no prompt or tag-directory row (store_paths.c), so a lookup of
 * a new name needs no read.  Every write that may give a path a row calls store_path_add
 * before it is submitted.  store_path_absent is 1 only when the path surely has none; 0
 * (maybe) until the names in the tables are read after store_start. */
void store_path_add(store *st, const char *path);
int store_path_absent(store *st, const char *path);

/* Unique, increasing job generations across mounts (the largest one in the database is
 * the base at open). */
int64_t store_next_generation(store *st);

/* ---- test hooks ---- */

/* Make every write of the database fail (mode "full" -> SQLITE_FULL, "eio" ->
 * SQLITE_IOERR) or work again (NULL).  Also driven by the file named in the environment
 * variable ROUTEFS_FAULT_FILE: while it exists, its first word is the mode. */
void store_fault_set(const char *mode);

#endif
