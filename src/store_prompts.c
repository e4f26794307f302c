/* store_prompts.c — see store_prompts.h.  Every statement is a static string (the
 * connections cache prepared statements by its address). */
#include "store_prompts.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *prompt_state_name(prompt_state s)
{
    static const char *const names[] = {"pending", "parked", "incomplete", "done", "failed",
                                        "empty"};
    return (unsigned)s <= PS_EMPTY ? names[s] : "unknown";
}

/* "tier/a/name" -> dir "tier/a", name "name" (pointers into a copy the caller frees). */
static int split_path(const char *path, char **dir, const char **name)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return -EINVAL;
    *dir = strndup(path, (size_t)(slash - path));
    *name = slash + 1;
    return *dir ? 0 : -ENOMEM;
}

/* ---- reads ---- */

#define ROW_COLUMNS                                                                         \
    "id, gen, state, writing, size, hash, mode, uid, gid, atime_ns, mtime_ns, ctime_ns,"     \
    " created_ms, finished_ms, park_count, next_attempt_ms, sent, out_size,"                 \
    " coalesce(length(CAST(meta AS BLOB)), 0), coalesce(length(CAST(err AS BLOB)), 0)"
static const char SQL_GET[] = "SELECT " ROW_COLUMNS " FROM prompts WHERE path = ?1";
/* The row and one blob (sp_get_with), by enum sp_blob. */
static const char *const SQL_GET_WITH[] = {
    "SELECT " ROW_COLUMNS ", data FROM prompts WHERE path = ?1",
    "SELECT " ROW_COLUMNS ", out FROM prompts WHERE path = ?1",
    "SELECT " ROW_COLUMNS ", meta FROM prompts WHERE path = ?1",
    "SELECT " ROW_COLUMNS ", err FROM prompts WHERE path = ?1",
};
#define ROW_NCOLUMNS 20

static void row_from(sqlite3_stmt *s, int c, prompt_row *r)
{
    r->id = sqlite3_column_int64(s, c + 0);
    r->gen = sqlite3_column_int64(s, c + 1);
    r->state = (prompt_state)sqlite3_column_int(s, c + 2);
    r->writing = sqlite3_column_int(s, c + 3);
    r->size = (size_t)sqlite3_column_int64(s, c + 4);
    r->hash = (uint64_t)sqlite3_column_int64(s, c + 5);
    r->attrs.mode = (mode_t)sqlite3_column_int(s, c + 6);
    r->attrs.uid = (uid_t)sqlite3_column_int64(s, c + 7);
    r->attrs.gid = (gid_t)sqlite3_column_int64(s, c + 8);
    r->attrs.atime_ns = sqlite3_column_int64(s, c + 9);
    r->attrs.mtime_ns = sqlite3_column_int64(s, c + 10);
    r->attrs.ctime_ns = sqlite3_column_int64(s, c + 11);
    r->created_ms = sqlite3_column_int64(s, c + 12);
    r->finished_ms = sqlite3_column_int64(s, c + 13);
    r->park_count = sqlite3_column_int(s, c + 14);
    r->next_attempt_ms = sqlite3_column_int64(s, c + 15);
    r->sent = sqlite3_column_int(s, c + 16);
    r->out_size = (size_t)sqlite3_column_int64(s, c + 17);
    r->meta_size = (size_t)sqlite3_column_int64(s, c + 18);
    r->err_size = (size_t)sqlite3_column_int64(s, c + 19);
}

/* A malloc'd, NUL-terminated copy of column col (NULL when it is NULL): 0 or -ENOMEM. */
static int column_copy(sqlite3_stmt *s, int col, char **data, size_t *len, rf_err *err)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return 0;
    const void *p = sqlite3_column_blob(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    char *copy = malloc(n + 1);
    if (!copy) {
        rf_err_set(err, ENOMEM, "out of memory");
        return -ENOMEM;
    }
    if (n)
        memcpy(copy, p, n);
    copy[n] = '\0';
    *data = copy;
    *len = n;
    return 0;
}

/* sp_get, and with data != NULL sp_get_with: one read. */
static int get_row(store *st, const char *path, const char *sql, prompt_row *row, char **data,
                   size_t *len, rf_err *err)
{
    if (data) {
        *data = NULL;
        *len = 0;
    }
    if (store_path_absent(st, path))
        return -ENOENT;   /* a new name: no read (store_paths.c) */
    store_settle(st, path);   /* its queued writes first (sp_begin_new, sp_queue_content) */
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, sql, err);
    int r = -ENOENT;
    if (!s) {
        r = -err->code;
    } else {
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            row_from(s, 0, row);
            r = data ? column_copy(s, ROW_NCOLUMNS, data, len, err) : 0;
        } else if (rc != SQLITE_DONE) {
            store_fail(c, rc, err, "read a prompt");
            r = -err->code;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}

int sp_get(store *st, const char *path, prompt_row *row, rf_err *err)
{
    return get_row(st, path, SQL_GET, row, NULL, NULL, err);
}

int sp_get_with(store *st, const char *path, enum sp_blob which, prompt_row *row, char **data,
                size_t *len, rf_err *err)
{
    return get_row(st, path, SQL_GET_WITH[which], row, data, len, err);
}

static const char SQL_READ_DATA[] = "SELECT data, gen FROM prompts WHERE path = ?1";
static const char SQL_READ_OUT[] = "SELECT out, gen FROM prompts WHERE path = ?1";
static const char SQL_READ_META[] = "SELECT meta, gen FROM prompts WHERE path = ?1";
static const char SQL_READ_ERR[] = "SELECT err, gen FROM prompts WHERE path = ?1";

int sp_read(store *st, const char *path, enum sp_blob which, int64_t gen, char **data,
            size_t *len, rf_err *err)
{
    static const char *const sql[] = {SQL_READ_DATA, SQL_READ_OUT, SQL_READ_META, SQL_READ_ERR};
    *data = NULL;
    *len = 0;
    store_settle(st, path);
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, sql[which], err);
    int r = -ENOENT;
    if (!s) {
        r = -err->code;
    } else {
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL &&
            (gen <= 0 || sqlite3_column_int64(s, 1) == gen)) {
            r = column_copy(s, 0, data, len, err);
        } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            store_fail(c, rc, err, "read a prompt");
            r = -err->code;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}

static const char SQL_LIST[] =
    "SELECT id, name, state, writing FROM prompts WHERE dir = ?1 AND id > ?2 ORDER BY id LIMIT ?3";

int sp_list(store *st, const char *dir, int64_t after_id, int max,
            int (*fn)(const sp_entry *e, void *ud), void *ud, rf_err *err)
{
    store_settle_all(st);   /* names just created, whose inserts are queued */
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, SQL_LIST, err);
    int n = 0, r = 0;
    if (!s) {
        r = -err->code;
    } else {
        sqlite3_bind_text(s, 1, dir, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, after_id);
        sqlite3_bind_int(s, 3, max);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            sp_entry e = {
                .id = sqlite3_column_int64(s, 0),
                .name = (const char *)sqlite3_column_text(s, 1),
                .state = (prompt_state)sqlite3_column_int(s, 2),
                .writing = sqlite3_column_int(s, 3),
            };
            n++;
            if (e.name && fn(&e, ud))
                break;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            store_fail(c, rc, err, "list a directory");
            r = -err->code;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r < 0 ? r : n;
}

static const char SQL_UNFINISHED[] =
    "SELECT path, id, gen, state, writing, size, hash, mode, uid, gid, atime_ns, mtime_ns,"
    " ctime_ns, created_ms, finished_ms, park_count, next_attempt_ms, sent, out_size,"
    " coalesce(length(CAST(meta AS BLOB)), 0), coalesce(length(CAST(err AS BLOB)), 0)"
    " FROM prompts WHERE state <= 2 OR writing ORDER BY id";

int sp_unfinished(store *st, int (*fn)(const char *path, const prompt_row *row, void *ud),
                  void *ud, rf_err *err)
{
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, SQL_UNFINISHED, err);
    int r = 0;
    if (!s) {
        r = -err->code;
    } else {
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            prompt_row row;
            row_from(s, 1, &row);
            const char *path = (const char *)sqlite3_column_text(s, 0);
            if (path && fn(path, &row, ud))
                break;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            store_fail(c, rc, err, "find unfinished jobs");
            r = -err->code;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}

static const char SQL_COUNT[] = "SELECT count(*) FROM prompts WHERE state = ?1";

long sp_count(store *st, prompt_state state)
{
    rf_err err;
    store_conn *c = store_reader(st, &err);
    if (!c)
        return -1;
    sqlite3_stmt *s = store_stmt(c, SQL_COUNT, &err);
    long n = -1;
    if (s) {
        sqlite3_bind_int(s, 1, (int)state);
        if (sqlite3_step(s) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return n;
}

/* ---- synchronous writes: an op on the caller's stack ---- */

typedef struct write_op {
    store_op op;               /* first */
    const char *path, *to;     /* borrowed: the caller waits */
    const prompt_attrs *attrs;
    unsigned mask;
    const void *data;
    size_t len;
    uint64_t hash;
    int64_t gen, new_gen, now_ms, mtime_ns;
    prompt_state state;
    prompt_row *row;           /* out (sp_begin_write) */
} write_op;

/* Run one statement that must change exactly one row: 0, -ENOENT when none changed. */
static int step_change(store_conn *w, sqlite3_stmt *s, rf_err *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_fail(w, rc, err, what);
    if (sqlite3_changes(store_conn_db(w)) == 0)
        return rf_err_set(err, ENOENT, "%s: no such prompt", what);
    return 0;
}

static int run_write(store *st, write_op *o, int (*apply)(store_conn *, store_op *, rf_err *),
                     rf_err *err)
{
    o->op.apply = apply;
    o->op.done = NULL;
    o->op.flags = 0;
    return store_run(st, &o->op, err);
}

static const char SQL_BEGIN_INSERT[] =
    "INSERT INTO prompts(path, dir, name, gen, state, writing, size, hash, mode, uid, gid,"
    " atime_ns, mtime_ns, ctime_ns, created_ms, data)"
    " VALUES(?1, ?2, ?3, ?4, 5, 1, 0, 0, ?5, ?6, ?7, ?8, ?8, ?8, ?9, x'')"
    " ON CONFLICT(path) DO UPDATE SET writing = 1";

static int apply_begin_write(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    char *dir = NULL;
    const char *name = NULL;
    if (split_path(o->path, &dir, &name) < 0)
        return rf_err_set(err, EINVAL, "%s: not a prompt path", o->path);
    sqlite3_stmt *s = store_stmt(w, SQL_BEGIN_INSERT, err);
    if (!s) {
        free(dir);
        return -1;
    }
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, dir, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, o->gen);
    sqlite3_bind_int(s, 5, (int)o->attrs->mode);
    sqlite3_bind_int64(s, 6, o->attrs->uid);
    sqlite3_bind_int64(s, 7, o->attrs->gid);
    sqlite3_bind_int64(s, 8, o->attrs->mtime_ns);
    sqlite3_bind_int64(s, 9, o->now_ms);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    free(dir);
    if (rc != SQLITE_DONE)
        return store_fail(w, rc, err, "create a prompt");
    if (!o->row)
        return 0;   /* sp_begin_new: the caller knows the row */
    sqlite3_stmt *g = store_stmt(w, SQL_GET, err);
    if (!g)
        return -1;
    sqlite3_bind_text(g, 1, o->path, -1, SQLITE_STATIC);
    rc = sqlite3_step(g);
    if (rc == SQLITE_ROW)
        row_from(g, 0, o->row);
    sqlite3_reset(g);
    if (rc != SQLITE_ROW)
        return store_fail(w, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, err, "create a prompt");
    return 0;
}

int sp_begin_write(store *st, const char *path, int64_t gen, const prompt_attrs *a,
                   int64_t now_ms, prompt_row *row, rf_err *err)
{
    write_op o = {.path = path, .gen = gen, .attrs = a, .now_ms = now_ms, .row = row};
    store_path_add(st, path);
    return run_write(st, &o, apply_begin_write, err);
}

/* sp_begin_new's op: a write_op that owns its path and attributes (row: NULL). */
typedef struct new_op {
    write_op w;                /* first */
    prompt_attrs attrs;
} new_op;

static void new_done(store_op *op, int status, const rf_err *err)
{
    new_op *o = (new_op *)op;
    if (status < 0)   /* (a held op outlasts a failing store: this one alone failed) */
        LOG_ERROR("%s: not recorded as being written: %s", o->w.path, err->msg);
    free((char *)o->w.path);
    free(o);
}

int sp_begin_new(store *st, const char *path, int64_t gen, const prompt_attrs *a,
                 int64_t now_ms, prompt_row *row)
{
    new_op *o = calloc(1, sizeof *o);
    if (!o || !(o->w.path = strdup(path))) {
        free(o);
        return -ENOMEM;
    }
    o->attrs = *a;
    o->w.op = (store_op){.apply = apply_begin_write, .done = new_done,
                         .flags = STORE_OP_HELD | STORE_OP_ONE_CHANGE,
                         .key = o->w.path};
    o->w.gen = gen;
    o->w.attrs = &o->attrs;
    o->w.now_ms = now_ms;
    *row = (prompt_row){.gen = gen, .state = PS_EMPTY, .writing = 1, .attrs = *a,
                        .created_ms = now_ms};   /* as SQL_BEGIN_INSERT makes it: */
    row->attrs.atime_ns = row->attrs.ctime_ns = a->mtime_ns;
    store_path_add(st, path);
    store_submit(st, &o->w.op);
    return 0;
}

static const char SQL_REPLACE[] =
    "UPDATE prompts SET data = ?2, size = ?3, hash = ?4, gen = ?5, state = ?6, mtime_ns = ?7,"
    " ctime_ns = ?7, created_ms = ?8, finished_ms = 0, park_count = 0, next_attempt_ms = 0,"
    " sent = 0, out = NULL, out_size = 0, meta = NULL, err = NULL"
    " WHERE path = ?1 AND gen = ?9";

static int apply_replace(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    sqlite3_stmt *s = store_stmt(w, SQL_REPLACE, err);
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, o->len ? o->data : "", (int)o->len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)o->len);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)o->hash);
    sqlite3_bind_int64(s, 5, o->new_gen);
    sqlite3_bind_int(s, 6, (int)o->state);
    sqlite3_bind_int64(s, 7, o->mtime_ns);
    sqlite3_bind_int64(s, 8, o->now_ms);
    sqlite3_bind_int64(s, 9, o->gen);
    return step_change(w, s, err, o->path);
}

int sp_replace_content(store *st, const char *path, int64_t old_gen, const void *data,
                       size_t len, uint64_t hash, int64_t new_gen, prompt_state state,
                       int64_t mtime_ns, int64_t now_ms, rf_err *err)
{
    write_op o = {.path = path, .gen = old_gen, .data = data, .len = len, .hash = hash,
                  .new_gen = new_gen, .state = state, .mtime_ns = mtime_ns, .now_ms = now_ms};
    return run_write(st, &o, apply_replace, err);
}

static const char SQL_TOUCH[] =
    "UPDATE prompts SET mtime_ns = ?2, ctime_ns = ?2 WHERE path = ?1";

static int apply_touch(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    sqlite3_stmt *s = store_stmt(w, SQL_TOUCH, err);
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, o->mtime_ns);
    return step_change(w, s, err, o->path);
}

/* sp_queue_content's op: a write_op that owns its path and a reference to the bytes. */
typedef struct content_op {
    write_op w;                /* first; w.path owned */
    blob *data;                /* owned reference; NULL for a touch */
    sp_queued_fn then;
} content_op;

static void content_done(store_op *op, int status, const rf_err *err)
{
    content_op *o = (content_op *)op;
    if (o->then)
        o->then(o->w.path, o->w.new_gen, o->data, status, err);
    else if (status < 0 && status != -ENOENT)   /* (gone meanwhile: nothing to save) */
        LOG_ERROR("%s: not saved: %s", o->w.path, err->msg);
    blob_unref(o->data);
    free((char *)o->w.path);
    free(o);
}

static int queue_content(store *st, content_op *o, const char *path,
                         int (*apply)(store_conn *, store_op *, rf_err *))
{
    if (!(o->w.path = strdup(path))) {
        blob_unref(o->data);
        free(o);
        return -ENOMEM;
    }
    o->w.op = (store_op){.apply = apply, .done = content_done,
                         .flags = STORE_OP_HELD | STORE_OP_ONE_CHANGE,
                         .key = o->w.path};
    store_submit(st, &o->w.op);
    return 0;
}

int sp_queue_content(store *st, const char *path, int64_t old_gen, blob *data, int64_t new_gen,
                     prompt_state state, int64_t mtime_ns, int64_t now_ms, sp_queued_fn then)
{
    content_op *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    o->data = blob_ref(data);
    o->then = then;
    o->w.gen = old_gen;
    o->w.data = data->data;
    o->w.len = data->len;
    o->w.hash = data->hash;
    o->w.new_gen = new_gen;
    o->w.state = state;
    o->w.mtime_ns = mtime_ns;
    o->w.now_ms = now_ms;
    return queue_content(st, o, path, apply_replace);
}

int sp_queue_touch(store *st, const char *path, int64_t mtime_ns, sp_queued_fn then)
{
    content_op *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    o->then = then;
    o->w.mtime_ns = mtime_ns;
    return queue_content(st, o, path, apply_touch);
}

static const char SQL_SETATTR[] =
    "UPDATE prompts SET"
    " mode = CASE WHEN ?2 & 1 THEN ?3 ELSE mode END,"
    " uid = CASE WHEN ?2 & 2 THEN ?4 ELSE uid END,"
    " gid = CASE WHEN ?2 & 4 THEN ?5 ELSE gid END,"
    " atime_ns = CASE WHEN ?2 & 8 THEN ?6 ELSE atime_ns END,"
    " mtime_ns = CASE WHEN ?2 & 16 THEN ?7 ELSE mtime_ns END,"
    " ctime_ns = ?8 WHERE path = ?1";
static const char SQL_DIR_SETATTR[] =
    "UPDATE dirs SET"
    " mode = CASE WHEN ?2 & 1 THEN ?3 ELSE mode END,"
    " uid = CASE WHEN ?2 & 2 THEN ?4 ELSE uid END,"
    " gid = CASE WHEN ?2 & 4 THEN ?5 ELSE gid END,"
    " mtime_ns = CASE WHEN ?2 & 16 THEN ?7 ELSE mtime_ns END,"
    " ctime_ns = ?8 WHERE path = ?1";

static int apply_setattr(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    for (int pass = 0; pass < 2; pass++) {
        sqlite3_stmt *s = store_stmt(w, pass ? SQL_DIR_SETATTR : SQL_SETATTR, err);
        if (!s)
            return -1;
        sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, (int)o->mask);
        sqlite3_bind_int(s, 3, (int)o->attrs->mode);
        sqlite3_bind_int64(s, 4, o->attrs->uid);
        sqlite3_bind_int64(s, 5, o->attrs->gid);
        sqlite3_bind_int64(s, 6, o->attrs->atime_ns);
        sqlite3_bind_int64(s, 7, o->attrs->mtime_ns);
        sqlite3_bind_int64(s, 8, o->attrs->ctime_ns);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return store_fail(w, rc, err, "set attributes");
        if (sqlite3_changes(store_conn_db(w)) > 0)
            return 0;
    }
    return rf_err_set(err, ENOENT, "%s: no such file", o->path);
}

int sp_setattr(store *st, const char *path, unsigned mask, const prompt_attrs *a, rf_err *err)
{
    write_op o = {.path = path, .mask = mask, .attrs = a};
    return run_write(st, &o, apply_setattr, err);
}

static const char SQL_DELETE[] = "DELETE FROM prompts WHERE path = ?1";

static int apply_delete(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    sqlite3_stmt *s = store_stmt(w, SQL_DELETE, err);
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    return step_change(w, s, err, o->path);
}

int sp_delete(store *st, const char *path, rf_err *err)
{
    write_op o = {.path = path};
    return run_write(st, &o, apply_delete, err);
}

static const char SQL_RENAME[] =
    "UPDATE prompts SET path = ?2, dir = ?3, name = ?4 WHERE path = ?1";

static int apply_rename(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    char *dir = NULL;
    const char *name = NULL;
    if (split_path(o->to, &dir, &name) < 0)
        return rf_err_set(err, EINVAL, "%s: not a prompt path", o->to);
    sqlite3_stmt *d = store_stmt(w, SQL_DELETE, err);
    if (!d) {
        free(dir);
        return -1;
    }
    sqlite3_bind_text(d, 1, o->to, -1, SQLITE_STATIC);
    int rc = sqlite3_step(d);
    sqlite3_reset(d);
    if (rc != SQLITE_DONE) {
        free(dir);
        return store_fail(w, rc, err, "rename a prompt");
    }
    sqlite3_stmt *s = store_stmt(w, SQL_RENAME, err);
    if (!s) {
        free(dir);
        return -1;
    }
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, o->to, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, dir, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, name, -1, SQLITE_STATIC);
    int r = step_change(w, s, err, o->path);
    free(dir);
    return r;
}

int sp_rename(store *st, const char *from, const char *to, rf_err *err)
{
    write_op o = {.path = from, .to = to};
    store_path_add(st, to);
    return run_write(st, &o, apply_rename, err);
}

static const char SQL_INSTALL[] =
    "INSERT INTO prompts(path, dir, name, gen, state, writing, size, hash, mode, uid, gid,"
    " atime_ns, mtime_ns, ctime_ns, created_ms, data)"
    " VALUES(?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    " ON CONFLICT(path) DO UPDATE SET gen = ?4, state = ?5, writing = 0, size = ?6, hash = ?7,"
    " mode = ?8, uid = ?9, gid = ?10, atime_ns = ?11, mtime_ns = ?12, ctime_ns = ?13,"
    " created_ms = ?14, data = ?15, finished_ms = 0, park_count = 0, next_attempt_ms = 0,"
    " sent = 0, out = NULL, out_size = 0, meta = NULL, err = NULL";

static int apply_install(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    char *dir = NULL;
    const char *name = NULL;
    if (split_path(o->path, &dir, &name) < 0)
        return rf_err_set(err, EINVAL, "%s: not a prompt path", o->path);
    sqlite3_stmt *s = store_stmt(w, SQL_INSTALL, err);
    if (!s) {
        free(dir);
        return -1;
    }
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, dir, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, o->new_gen);
    sqlite3_bind_int(s, 5, (int)o->state);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)o->len);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)o->hash);
    sqlite3_bind_int(s, 8, (int)o->attrs->mode);
    sqlite3_bind_int64(s, 9, o->attrs->uid);
    sqlite3_bind_int64(s, 10, o->attrs->gid);
    sqlite3_bind_int64(s, 11, o->attrs->atime_ns);
    sqlite3_bind_int64(s, 12, o->attrs->mtime_ns);
    sqlite3_bind_int64(s, 13, o->attrs->ctime_ns);
    sqlite3_bind_int64(s, 14, o->now_ms);
    sqlite3_bind_blob(s, 15, o->len ? o->data : "", (int)o->len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    free(dir);
    if (rc != SQLITE_DONE)
        return store_fail(w, rc, err, "install a prompt");
    return 0;
}

int sp_install(store *st, const char *path, const void *data, size_t len, uint64_t hash,
               int64_t gen, prompt_state state, const prompt_attrs *a, int64_t now_ms,
               rf_err *err)
{
    write_op o = {.path = path, .data = data, .len = len, .hash = hash, .new_gen = gen,
                  .state = state, .attrs = a, .now_ms = now_ms};
    store_path_add(st, path);
    return run_write(st, &o, apply_install, err);
}

static const char SQL_MKDIR[] =
    "INSERT INTO dirs(path, parent, name, mode, uid, gid, mtime_ns, ctime_ns)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)";

static int apply_mkdir(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    char *parent = NULL;
    const char *name = NULL;
    if (split_path(o->path, &parent, &name) < 0)
        return rf_err_set(err, EINVAL, "%s: not a directory path", o->path);
    sqlite3_stmt *s = store_stmt(w, SQL_MKDIR, err);
    if (!s) {
        free(parent);
        return -1;
    }
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, parent, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, (int)o->attrs->mode);
    sqlite3_bind_int64(s, 5, o->attrs->uid);
    sqlite3_bind_int64(s, 6, o->attrs->gid);
    sqlite3_bind_int64(s, 7, o->attrs->mtime_ns);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    free(parent);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return rf_err_set(err, EEXIST, "%s: exists", o->path);
    if (rc != SQLITE_DONE)
        return store_fail(w, rc, err, "create a directory");
    return 0;
}

int sp_mkdir(store *st, const char *path, const prompt_attrs *a, rf_err *err)
{
    write_op o = {.path = path, .attrs = a};
    store_path_add(st, path);
    return run_write(st, &o, apply_mkdir, err);
}

static const char SQL_RMDIR[] =
    "DELETE FROM dirs WHERE path = ?1 AND NOT EXISTS(SELECT 1 FROM prompts WHERE dir = ?1)"
    " AND NOT EXISTS(SELECT 1 FROM dirs WHERE parent = ?1)";
static const char SQL_DIR_EXISTS[] = "SELECT 1 FROM dirs WHERE path = ?1";

static int apply_rmdir(store_conn *w, store_op *op, rf_err *err)
{
    write_op *o = (write_op *)op;
    sqlite3_stmt *s = store_stmt(w, SQL_RMDIR, err);
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_fail(w, rc, err, "remove a directory");
    if (sqlite3_changes(store_conn_db(w)) > 0)
        return 0;
    sqlite3_stmt *e = store_stmt(w, SQL_DIR_EXISTS, err);
    if (!e)
        return -1;
    sqlite3_bind_text(e, 1, o->path, -1, SQLITE_STATIC);
    rc = sqlite3_step(e);
    sqlite3_reset(e);
    return rc == SQLITE_ROW ? rf_err_set(err, ENOTEMPTY, "%s: not empty", o->path)
                            : rf_err_set(err, ENOENT, "%s: no such directory", o->path);
}

int sp_rmdir(store *st, const char *path, rf_err *err)
{
    write_op o = {.path = path};
    return run_write(st, &o, apply_rmdir, err);
}
