/* store_dirs.c — see store_prompts.h: reads of the tag directories (a directory's
 * attributes, its children, whether it is empty).  Their writes are ops in
 * store_prompts.c, beside the prompts they hold.  Every statement is a static string
 * (the connections cache prepared statements by its address). */
#include "store_prompts.h"

#include <errno.h>
#include <sqlite3.h>

static const char SQL_DIR_GET[] =
    "SELECT mode, uid, gid, mtime_ns, ctime_ns FROM dirs WHERE path = ?1";

int sp_dir_get(store *st, const char *path, dir_row *row, rf_err *err)
{
    if (store_path_absent(st, path))
        return -ENOENT;   /* a new name: no read (store_paths.c) */
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, SQL_DIR_GET, err);
    int r = -ENOENT;
    if (!s) {
        r = -err->code;
    } else {
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            row->attrs.mode = (mode_t)sqlite3_column_int(s, 0);
            row->attrs.uid = (uid_t)sqlite3_column_int64(s, 1);
            row->attrs.gid = (gid_t)sqlite3_column_int64(s, 2);
            row->attrs.mtime_ns = row->attrs.atime_ns = sqlite3_column_int64(s, 3);
            row->attrs.ctime_ns = sqlite3_column_int64(s, 4);
            r = 0;
        } else if (rc != SQLITE_DONE) {
            store_fail(c, rc, err, "read a directory");
            r = -err->code;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}

static const char SQL_DIR_LIST[] = "SELECT name FROM dirs WHERE parent = ?1 ORDER BY name";

int sp_dir_list(store *st, const char *parent, int (*fn)(const char *name, void *ud), void *ud,
                rf_err *err)
{
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, SQL_DIR_LIST, err);
    int r = 0;
    if (!s) {
        r = -err->code;
    } else {
        sqlite3_bind_text(s, 1, parent, -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(s, 0);
            if (name && fn(name, ud))
                break;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            store_fail(c, rc, err, "list directories");
            r = -err->code;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}

static const char SQL_DIR_NONEMPTY[] =
    "SELECT EXISTS(SELECT 1 FROM prompts WHERE dir = ?1)"
    " OR EXISTS(SELECT 1 FROM dirs WHERE parent = ?1)";

int sp_dir_nonempty(store *st, const char *path, rf_err *err)
{
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, SQL_DIR_NONEMPTY, err);
    int r = -EIO;
    if (!s) {
        r = -err->code;
    } else {
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
            r = sqlite3_column_int(s, 0) ? 1 : 0;
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}
