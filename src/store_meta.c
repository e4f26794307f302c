/* store_meta.c — sp_meta_merge (store_prompts.h): a member added to a finished job's meta
 * after the fact (OpenRouter's view of the generation, fetched in the background).
 *
 * Its own file only because store_prompts.c is at the 800-line limit.  One synchronous
 * store operation, conditional on the job's generation (unique across mounts, so a
 * rewritten prompt's new job is never touched). */
#include "store_prompts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "jsonfmt.h"

typedef struct merge_op {
    store_op op;               /* first */
    int64_t gen;
    const char *key;           /* borrowed: the caller waits */
    const cJSON *value;        /* borrowed: copied into the meta */
    int merged;
} merge_op;

static const char SQL_META_GET[] = "SELECT meta FROM prompts WHERE gen = ?1";
static const char SQL_META_PUT[] = "UPDATE prompts SET meta = ?2 WHERE gen = ?1";

/* The meta of the row with generation gen, parsed; NULL when there is none (or it is
 * not a JSON object).  -1 with err on a database error. */
static int read_meta(store_conn *w, int64_t gen, cJSON **meta, rf_err *err)
{
    *meta = NULL;
    sqlite3_stmt *s = store_stmt(w, SQL_META_GET, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, gen);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        *meta = cJSON_ParseWithLength((const char *)sqlite3_column_text(s, 0),
                                      (size_t)sqlite3_column_bytes(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(w, rc, err, "read a meta");
    if (*meta && !cJSON_IsObject(*meta)) {
        cJSON_Delete(*meta);
        *meta = NULL;
    }
    return 0;
}

static int apply_meta_merge(store_conn *w, store_op *op, rf_err *err)
{
    merge_op *o = (merge_op *)op;
    o->merged = 0;
    cJSON *meta;
    if (read_meta(w, o->gen, &meta, err) < 0)
        return -1;
    if (!meta)
        return 0;   /* no such generation, or its job has no meta yet: nothing to do */
    cJSON_DeleteItemFromObjectCaseSensitive(meta, o->key);
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "enriched");
    cJSON *value = cJSON_Duplicate(o->value, 1);
    char *text = NULL;
    if (value && !cJSON_AddItemToObject(meta, o->key, value))
        cJSON_Delete(value);
    else if (value && cJSON_AddTrueToObject(meta, "enriched"))
        text = json_print_line(meta, 1);   /* as the job's commit wrote it: pretty */
    cJSON_Delete(meta);
    if (!text)
        return rf_err_set(err, ENOMEM, "out of memory");
    sqlite3_stmt *u = store_stmt(w, SQL_META_PUT, err);
    if (!u) {
        free(text);
        return -1;
    }
    sqlite3_bind_int64(u, 1, o->gen);
    sqlite3_bind_text(u, 2, text, -1, free);   /* sqlite frees it */
    int rc = sqlite3_step(u);
    sqlite3_reset(u);
    if (rc != SQLITE_DONE)
        return store_fail(w, rc, err, "merge into a meta");
    o->merged = sqlite3_changes(store_conn_db(w)) > 0;
    return 0;
}

int sp_meta_merge(store *st, int64_t gen, const char *key, const char *json_object,
                  rf_err *err)
{
    cJSON *value = key && *key && json_object ? cJSON_Parse(json_object) : NULL;
    if (!cJSON_IsObject(value)) {
        cJSON_Delete(value);
        rf_err_set(err, EINVAL, "%s: not a JSON object", key ? key : "meta member");
        return -EINVAL;
    }
    merge_op o = {.op = {.apply = apply_meta_merge}, .gen = gen, .key = key, .value = value};
    int r = store_run(st, &o.op, err);
    cJSON_Delete(value);
    return r < 0 ? r : o.merged;
}
