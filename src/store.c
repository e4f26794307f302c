/* store.c — see store.h: the database (its connections: store_conn.c), the writer thread
 * and its group commit, and the failing state.
 *
 * Locking: st->lock guards the queue, the health fields and the stop flag; st->rlock the
 * pool of idle readers.  Both are leaves.  The writer connection belongs to the writer
 * thread alone; apply functions run there without st->lock. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "faultvfs.h"
#include "log.h"
#include "store_schema.h"

#define GROUP_MAX_OPS 4096         /* bounds one transaction's latency */
#define GATHER_US 10000            /* under load, a group gathers for this long ... */
#define GATHER_BUSY_OPS 4          /* ... when the one before had at least this many ops.
                                    * 10 ms, not 2: groups of ~50 ops instead of ~10, each
                                    * page written once per group (a batch: ~15% faster);
                                    * a job under load starts up to 10 ms later */
#define RETRY_FIRST_MS 250         /* failing: first retry, doubling ... */
#define RETRY_MAX_MS 5000          /* ... up to this */
#define CLOSE_RETRY_MS 5000        /* at close, how long held work may still be retried */

/* ---- errors ---- */

int store_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return 0;
    case SQLITE_FULL: return ENOSPC;
    case SQLITE_READONLY: return EROFS;
    case SQLITE_NOMEM: return ENOMEM;
    case SQLITE_CONSTRAINT: return EEXIST;
    case SQLITE_TOOBIG: return EFBIG;
    case SQLITE_NOTFOUND: return ENOENT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return EBUSY;
    default: return EIO;
    }
}

/* The whole store is in trouble (not just one operation): the disk is full, failing,
 * read-only, or the database cannot be opened. */
static int is_store_failure(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_BUSY:
    case SQLITE_NOMEM:
        return 1;
    default:
        return 0;
    }
}

int store_fail(store_conn *c, int rc, rf_err *err, const char *what)
{
    c->last_rc = rc;
    return rf_err_set(err, store_errno(rc), "state store: %s: %s", what, sqlite3_errmsg(c->db));
}

/* ---- health ---- */

void store_health_get(store *st, store_health *h)
{
    pthread_mutex_lock(&st->lock);
    h->failing = st->failing;
    h->code = st->fail_code;
    snprintf(h->why, sizeof h->why, "%s", st->why);
    h->since_ms = st->since_ms;
    h->held = st->held;
    h->held_paid = st->held_paid;
    h->groups = st->groups;
    h->ops = st->ops;
    h->failures = st->failures;
    pthread_mutex_unlock(&st->lock);
}

int store_admit(store *st)
{
    pthread_mutex_lock(&st->lock);
    int r = st->failing ? -st->fail_code : 0;
    pthread_mutex_unlock(&st->lock);
    return r;
}

void store_set_health_listener(store *st, void (*fn)(int failing, void *ud), void *ud)
{
    pthread_mutex_lock(&st->lock);
    st->listener = fn;
    st->listener_ud = ud;
    pthread_mutex_unlock(&st->lock);
}

/* ---- the writer ---- */

static const char SQL_SAVEPOINT[] = "SAVEPOINT op";
static const char SQL_RELEASE[] = "RELEASE op";
static const char SQL_ROLLBACK_TO[] = "ROLLBACK TO op";
static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";

static int step_done(store_conn *c, const char *sql, rf_err *err)
{
    sqlite3_stmt *s = store_stmt(c, sql, err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_fail(c, rc, err, sql);
    return 0;
}

/* The writer connection after a failed transaction: roll back, and start afresh when the
 * connection cannot even do that. */
static void writer_recover(store *st)
{
    store_conn *w = st->writer;
    if (w && !sqlite3_get_autocommit(w->db))
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    if (w && sqlite3_get_autocommit(w->db))
        return;
    store_conn_close(w);
    rf_err err;
    st->writer = store_conn_open(st, 0, &err);
    if (!st->writer)
        LOG_ERROR("%s", err.msg);
}

/* Apply a group in one transaction.  Returns 0 when it committed (each op's own status
 * set), or -1 with err when the store failed as a whole (nothing of it committed). */
static int apply_group(store *st, store_op *group, rf_err *err)
{
    if (!st->writer) {
        writer_recover(st);
        if (!st->writer)
            return rf_err_set(err, EIO, "state store: cannot open the database");
    }
    store_conn *w = st->writer;
    int durable = 0;
    for (store_op *op = group; op; op = op->next)
        durable |= (op->flags & STORE_OP_DURABLE) != 0;
    if (durable != w->sync_full) {   /* (a pragma is parsed each time: only on a change) */
        if (store_conn_exec(w, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                            err) < 0)
            goto failed;
        w->sync_full = durable;
    }
    if (step_done(w, SQL_BEGIN, err) < 0)
        goto failed;
    for (store_op *op = group; op; op = op->next) {
        rf_err_clear(&op->err);
        w->last_rc = SQLITE_OK;
        int savepoint = !(op->flags & STORE_OP_ONE_CHANGE);
        if (savepoint && step_done(w, SQL_SAVEPOINT, err) < 0)
            goto failed;
        if (op->apply(w, op, &op->err) == 0) {
            op->status = 0;
            if (savepoint && step_done(w, SQL_RELEASE, err) < 0)
                goto failed;
            continue;
        }
        if (is_store_failure(w->last_rc)) {
            *err = op->err;
            goto failed;
        }
        /* This operation alone failed (a constraint, a missing row): undo just it. */
        op->status = -(op->err.code ? op->err.code : EIO);
        if (savepoint &&
            (step_done(w, SQL_ROLLBACK_TO, err) < 0 || step_done(w, SQL_RELEASE, err) < 0))
            goto failed;
    }
    if (step_done(w, SQL_COMMIT, err) < 0)
        goto failed;
    return 0;
failed:
    if (!err->code)
        err->code = EIO;
    writer_recover(st);
    return -1;
}

/* A trivial write: does the disk work again? */
static int probe_write(store *st, rf_err *err)
{
    if (!st->writer)
        writer_recover(st);
    if (!st->writer)
        return rf_err_set(err, EIO, "state store: cannot open the database");
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO info(key, value) VALUES('probe', '%lld')",
             (long long)now_wall_ms());
    if (store_conn_exec(st->writer, sql, err) < 0) {
        writer_recover(st);
        return -1;
    }
    return 0;
}

static void finish_op(store *st, store_op *op)
{
    store_keys_del(st, op);   /* committed (or failed): reads need not wait for it now */
    if (op->waiting) {
        pthread_mutex_lock(&st->lock);
        op->waiting = 2;                 /* done: the waiting thread may go on */
        pthread_cond_broadcast(&st->applied);
        pthread_mutex_unlock(&st->lock);
    } else if (op->done) {
        op->done(op, op->status, op->status ? &op->err : NULL);
    }
}

static void set_health(store *st, int failing, const rf_err *err)
{
    void (*fn)(int, void *) = NULL;
    void *ud = NULL;
    pthread_mutex_lock(&st->lock);
    int changed = st->failing != failing;
    st->failing = failing;
    if (failing) {
        st->fail_code = err->code == ENOSPC || err->code == EROFS ? err->code : EIO;
        snprintf(st->why, sizeof st->why, "%s", err->msg);
        if (changed) {
            st->since_ms = now_wall_ms();
            st->failures++;
        }
    } else {
        st->fail_code = 0;
        st->why[0] = '\0';
        st->since_ms = 0;
        st->held = st->held_paid = 0;   /* what was held just committed */
    }
    if (changed) {
        fn = st->listener;
        ud = st->listener_ud;
    }
    pthread_mutex_unlock(&st->lock);
    if (changed && failing)
        LOG_ERROR("state store failing: %s; new prompts are refused, answers already paid "
                  "for are held in memory and retried", err->msg);
    else if (changed)
        LOG_INFO("state store works again: held work committed, new prompts accepted");
    if (fn)
        fn(failing, ud);
}

/* Take the queue's first GROUP_MAX_OPS operations.  Lock held. */
static store_op *take_group(store *st, size_t *n)
{
    store_op *group = st->head, *last = NULL;
    size_t count = 0;
    for (store_op *op = group; op && count < GROUP_MAX_OPS; op = op->next) {
        last = op;
        count++;
    }
    st->head = last ? last->next : NULL;
    if (!st->head)
        st->tail = NULL;
    if (last)
        last->next = NULL;
    *n = count;
    return group;
}

/* Split list into the held operations (*keep, in order) and the rest (returned, in
 * order, each failed with err). */
static store_op *split_unheld(store_op *list, store_op **keep, const rf_err *err, size_t *ndrop)
{
    store_op *drop = NULL, **dt = &drop, **kt = keep;
    *keep = NULL;
    *ndrop = 0;
    for (store_op *op = list, *next; op; op = next) {
        next = op->next;
        op->next = NULL;
        if (op->flags & STORE_OP_HELD) {
            *kt = op;
            kt = &op->next;
        } else {
            op->status = -(err->code ? err->code : EIO);
            op->err = *err;
            *dt = op;
            dt = &op->next;
            (*ndrop)++;
        }
    }
    return drop;
}

/* Make list the queue's head (before what is queued now).  Lock held. */
static void requeue_front(store *st, store_op *list)
{
    size_t n = 0;
    store_op *last = NULL;
    for (store_op *op = list; op; op = op->next) {
        last = op;
        n++;
    }
    if (last) {
        last->next = st->head;
        st->head = list;
        if (!st->tail)
            st->tail = last;
    }
    st->held = st->held_paid = 0;
    for (store_op *op = st->head; op; op = op->next) {
        st->held++;
        st->held_paid += (op->flags & STORE_OP_PAID) != 0;
    }
}

static void finish_all(store *st, store_op *list)
{
    for (store_op *op = list, *next; op; op = next) {
        next = op->next;
        finish_op(st, op);
    }
}

/* Wait for work until until_us on the monotonic clock (the cond's clock: store_open). */
static void timed_wait_us(store *st, int64_t until_us)
{
    if (until_us <= now_mono_us())
        return;
    struct timespec ts = {.tv_sec = until_us / 1000000, .tv_nsec = (until_us % 1000000) * 1000};
    pthread_cond_timedwait(&st->work, &st->lock, &ts);
}

/* The writer: one group at a time.  While failing, operations that may fail are failed
 * at once, held ones wait for the next retry (or a probe write when nothing is held). */
static void *writer_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "rfs-store");  /* for top -H, perf; cosmetic */
    store *st = arg;
    long backoff = RETRY_FIRST_MS;
    int64_t retry_at = 0, give_up_at = 0, gather_until = 0;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        if (st->stopping && !give_up_at)
            give_up_at = now_mono_ms() + CLOSE_RETRY_MS;
        if (st->failing) {
            store_op *keep = NULL;
            size_t ndrop = 0;
            rf_err ferr;
            rf_err_set(&ferr, st->fail_code, "state store failing: %s", st->why);
            store_op *drop = split_unheld(st->head, &keep, &ferr, &ndrop);
            st->head = st->tail = NULL;
            requeue_front(st, keep);
            if (drop) {
                pthread_mutex_unlock(&st->lock);
                finish_all(st, drop);
                pthread_mutex_lock(&st->lock);
                st->finished += ndrop;
                pthread_cond_broadcast(&st->applied);
                continue;
            }
            /* Closing: nothing held is nothing to wait for; held work gets a bounded
             * time for the disk to come back. */
            if (st->stopping && (!st->head || now_mono_ms() >= give_up_at))
                break;
            if (now_mono_ms() < retry_at) {
                int64_t until = st->stopping && give_up_at < retry_at ? give_up_at : retry_at;
                timed_wait_us(st, until * 1000);
                continue;
            }
        } else if (!st->head) {
            if (st->stopping)
                break;
            pthread_cond_wait(&st->work, &st->lock);
            continue;
        } else if (gather_until && !st->hurry && !st->stopping && now_mono_us() < gather_until) {
            /* Busy: let more work join this group (one transaction and one sync for many
             * jobs), unless a thread waits for it. */
            st->gathering = 1;   /* store_submit need not wake it */
            timed_wait_us(st, gather_until);
            st->gathering = 0;
            continue;
        }
        st->hurry = 0;
        int was_failing = st->failing;
        size_t n = 0;
        store_op *group = take_group(st, &n);
        gather_until = n >= GATHER_BUSY_OPS ? now_mono_us() + GATHER_US : 0;
        pthread_mutex_unlock(&st->lock);

        rf_err err;
        rf_err_clear(&err);
        int ok = group ? apply_group(st, group, &err) == 0 : probe_write(st, &err) == 0;
        if (ok) {
            if (was_failing) {
                set_health(st, 0, NULL);
                backoff = RETRY_FIRST_MS;
            }
            finish_all(st, group);
            pthread_mutex_lock(&st->lock);
            st->groups += group != NULL;
            st->ops += n;
            st->finished += n;
            st->held = st->held_paid = 0;
            pthread_cond_broadcast(&st->applied);
            continue;
        }
        set_health(st, 1, &err);
        retry_at = now_mono_ms() + backoff;
        backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
        store_op *keep = NULL;
        size_t ndrop = 0;
        store_op *drop = split_unheld(group, &keep, &err, &ndrop);
        finish_all(st, drop);
        pthread_mutex_lock(&st->lock);
        st->finished += ndrop;
        requeue_front(st, keep);
        pthread_cond_broadcast(&st->applied);
    }
    /* Only while failing at close can work be left: it is lost, and said so. */
    store_op *rest = st->head;
    st->head = st->tail = NULL;
    pthread_mutex_unlock(&st->lock);
    size_t lost = 0;
    for (store_op *op = rest, *next; op; op = next) {
        next = op->next;
        op->status = -EIO;
        rf_err_set(&op->err, EIO, "state store still failing at unmount: not saved");
        lost++;
        finish_op(st, op);
    }
    if (lost)
        LOG_ERROR("state store still failing at unmount: %zu held operation(s) could not be "
                  "saved", lost);
    pthread_mutex_lock(&st->lock);
    st->finished += lost;
    pthread_cond_broadcast(&st->applied);
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

void store_submit(store *st, store_op *op)
{
    op->next = NULL;
    op->status = 0;
    store_keys_add(st, op);
    pthread_mutex_lock(&st->lock);
    if (st->tail)
        st->tail->next = op;
    else
        st->head = op;
    st->tail = op;
    st->submitted++;
    if (op->flags & STORE_OP_URGENT)
        st->hurry = 1;   /* no gathering: a job waits for this to start */
    if (!st->gathering || (op->flags & STORE_OP_URGENT))
        pthread_cond_signal(&st->work);
    pthread_mutex_unlock(&st->lock);
}

int store_run(store *st, store_op *op, rf_err *err)
{
    pthread_mutex_lock(&st->lock);
    if (st->failing && !(op->flags & STORE_OP_HELD)) {
        int code = st->fail_code;
        rf_err_set(err, code, "state store failing: %s", st->why);
        pthread_mutex_unlock(&st->lock);
        return -code;
    }
    op->next = NULL;
    op->status = 0;
    op->waiting = 1;
    if (st->tail)
        st->tail->next = op;
    else
        st->head = op;
    st->tail = op;
    st->submitted++;
    st->hurry = 1;   /* a thread waits: no gathering */
    pthread_cond_signal(&st->work);
    while (op->waiting != 2)
        pthread_cond_wait(&st->applied, &st->lock);
    pthread_mutex_unlock(&st->lock);
    if (op->status < 0 && err)
        *err = op->err;
    return op->status;
}

int store_flush(store *st)
{
    pthread_mutex_lock(&st->lock);
    uint64_t target = st->submitted;
    while (st->finished < target && !st->failing) {
        st->hurry = 1;   /* a thread waits: no gathering, for each group until target */
        pthread_cond_signal(&st->work);
        pthread_cond_wait(&st->applied, &st->lock);
    }
    int r = st->finished >= target ? 0 : -st->fail_code;
    pthread_mutex_unlock(&st->lock);
    return r;
}

static int apply_nothing(store_conn *w, store_op *op, rf_err *err)
{
    (void)w, (void)op, (void)err;
    return 0;
}

int store_sync(store *st)
{
    store_op op = {.apply = apply_nothing, .flags = STORE_OP_DURABLE};
    rf_err err;
    return store_run(st, &op, &err);   /* (queued after everything before it) */
}

int64_t store_next_generation(store *st)
{
    return __atomic_add_fetch(&st->generation, 1, __ATOMIC_RELAXED);
}

void store_fault_set(const char *mode)
{
    faultvfs_set(mode);
}

/* ---- open / close ---- */

static int mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf)
        return -ENAMETOOLONG;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The directory, its lock, and files/ for scratch. */
static int open_directory(store *st, const char *dir, rf_err *err)
{
    int r = mkdir_parents(dir);
    if (r < 0)
        return rf_err_set(err, -r, "state directory %s: cannot create: %s", dir, strerror(-r));
    if (!(st->path = realpath(dir, NULL)))
        return rf_err_set(err, errno, "state directory %s: %s", dir, strerror(errno));
    st->dirfd = open(st->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->dirfd < 0)
        return rf_err_set(err, errno, "state directory %s: %s", st->path, strerror(errno));
    if (fchmod(st->dirfd, 0700) < 0 && errno != EPERM)
        return rf_err_set(err, errno, "state directory %s: chmod: %s", st->path, strerror(errno));
    st->lockfd = openat(st->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lockfd < 0)
        return rf_err_set(err, errno, "state directory %s is not writable: %s", st->path,
                          strerror(errno));
    if (flock(st->lockfd, LOCK_EX | LOCK_NB) < 0)
        return rf_err_set(err, EBUSY, "state directory %s is in use by another routefs", st->path);
    if (mkdirat(st->dirfd, "files", 0700) < 0 && errno != EEXIST)
        return rf_err_set(err, errno, "state directory %s: cannot create files/: %s", st->path,
                          strerror(errno));
    if (asprintf(&st->db_path, "%s/%s", st->path, STORE_DB_NAME) < 0) {
        st->db_path = NULL;
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

store *store_open(const char *dir, rf_err *err)
{
    int rc = faultvfs_register();
    if (rc != SQLITE_OK) {
        rf_err_set(err, EIO, "state store: cannot register the SQLite VFS: %s", sqlite3_errstr(rc));
        return NULL;
    }
    store *st = calloc(1, sizeof *st);
    if (!st) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    st->dirfd = st->lockfd = -1;
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->rlock, NULL);
    if (store_keys_init(st) < 0) {
        pthread_mutex_destroy(&st->lock);
        pthread_mutex_destroy(&st->rlock);
        free(st);
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* retries wait on the monotonic clock */
    pthread_cond_init(&st->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->applied, NULL);
    if (open_directory(st, dir, err) < 0)
        goto fail;
    if (!(st->writer = store_conn_open(st, 0, err)))
        goto fail;
    if (store_schema_ensure(st->writer, &st->generation, err) < 0)
        goto fail;
    return st;
fail:
    store_close(st);
    return NULL;
}

int store_start(store *st, rf_err *err)
{
    store_paths_start(st);
    int e = pthread_create(&st->thread, NULL, writer_main, st);
    if (e)
        return rf_err_set(err, e, "cannot start the store thread: %s", strerror(e));
    st->thread_started = 1;
    return 0;
}

int store_direct(store *st, int (*fn)(store_conn *w, void *ud, rf_err *err), void *ud,
                 rf_err *err)
{
    if (st->thread_started)
        return rf_err_set(err, EBUSY, "state store: the writer is running");
    if (store_conn_exec(st->writer, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    if (fn(st->writer, ud, err) < 0) {
        sqlite3_exec(st->writer->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return store_conn_exec(st->writer, "COMMIT", err);
}

void store_close(store *st)
{
    if (!st)
        return;
    if (st->thread_started) {
        pthread_mutex_lock(&st->lock);
        st->stopping = 1;
        pthread_cond_broadcast(&st->work);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL);
    }
    store_paths_stop(st);
    if (st->writer) {
        /* Fold the WAL back into the database: a clean state directory after unmount. */
        sqlite3_wal_checkpoint_v2(st->writer->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        store_conn_close(st->writer);
    }
    while (st->idle_readers) {
        store_conn *c = st->idle_readers;
        st->idle_readers = c->next;
        store_conn_close(c);
    }
    if (st->lockfd >= 0)
        close(st->lockfd);
    if (st->dirfd >= 0)
        close(st->dirfd);
    pthread_mutex_destroy(&st->lock);
    pthread_mutex_destroy(&st->rlock);
    store_keys_free(st);
    pthread_cond_destroy(&st->work);
    pthread_cond_destroy(&st->applied);
    free(st->db_path);
    free(st->path);
    free(st);
}

const char *store_path(const store *st)
{
    return st->path;
}

int store_dirfd(const store *st)
{
    return st->dirfd;
}
