/* store_ledger.c — see store_ledger.h. */
#include "store_ledger.h"

#include "clock.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_PER_DAY 86400000LL

const long store_latency_bounds_ms[STORE_LATENCY_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
};

static int64_t day_of(int64_t ms)
{
    return ms >= 0 ? ms / MS_PER_DAY : -((-ms + MS_PER_DAY - 1) / MS_PER_DAY);
}

void ledger_row_clear(ledger_row *r)
{
    free(r->ref);
    free(r->path);
    free(r->tier);
    free(r->tag);
    free(r->provider);
    free(r->model);
    free(r->upstream);
    free(r->note);
    memset(r, 0, sizeof *r);
}

job_commit *job_commit_new(void)
{
    return calloc(1, sizeof(job_commit));
}

void job_commit_free(job_commit *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->out);
    free(c->meta);
    free(c->err);
    free(c->activity);
    free(c->event);
    for (size_t i = 0; i < c->nledger; i++)
        ledger_row_clear(&c->ledger[i]);
    free(c->ledger);
    for (size_t i = 0; i < c->nattempts; i++)
        free(c->attempts[i].provider);
    free(c->attempts);
    free(c);
}

/* ---- the commit ---- */

static const char SQL_RESULT[] =
    "UPDATE prompts SET state = ?3, finished_ms = ?4, out = ?5, out_size = ?6, meta = ?7,"
    " err = ?8, sent = 0, park_count = 0, next_attempt_ms = 0 WHERE gen = ?2";
static const char SQL_LEDGER[] =
    "INSERT INTO ledger(ref, at_ms, path, tier, tag, provider, model, upstream, cost_nusd,"
    " estimated, note, prompt_tokens, completion_tokens)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
static const char SQL_SPEND_DAY[] =
    "INSERT INTO spend_days(day, tier, tag, provider, model, upstream, nusd, requests,"
    " unpriced, estimated) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9)"
    " ON CONFLICT DO UPDATE SET nusd = nusd + excluded.nusd, requests = requests + 1,"
    " unpriced = unpriced + excluded.unpriced, estimated = estimated + excluded.estimated";
static const char SQL_ACTIVITY_END[] =
    "SELECT off + length(CAST(line AS BLOB)) FROM activity ORDER BY seq DESC LIMIT 1";
/* Each line ends with '\n' whether or not the caller's did (store_ledger.h says "without",
 * meta.c's job_meta_and_activity includes it): the file stays one JSON object per line. */
static const char SQL_ACTIVITY[] =
    "INSERT INTO activity(off, at_ms, line)"
    " VALUES(?1, ?2, CASE WHEN substr(?3, -1) = char(10) THEN ?3 ELSE ?3 || char(10) END)";
static const char SQL_PROVIDER_DAY[] =
    "INSERT INTO provider_days(day, provider, requests, failures, fallbacks, latency_ms_sum,"
    " b0, b1, b2, b3, b4, b5, b6, b7, b8, b9)"
    " VALUES(?1, ?2, 1, ?3, ?4, ?5, ?6 = 0, ?6 = 1, ?6 = 2, ?6 = 3, ?6 = 4, ?6 = 5, ?6 = 6,"
    " ?6 = 7, ?6 = 8, ?6 = 9)"
    " ON CONFLICT DO UPDATE SET requests = requests + 1, failures = failures + excluded.failures,"
    " fallbacks = fallbacks + excluded.fallbacks,"
    " latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,"
    " b0 = b0 + excluded.b0, b1 = b1 + excluded.b1, b2 = b2 + excluded.b2,"
    " b3 = b3 + excluded.b3, b4 = b4 + excluded.b4, b5 = b5 + excluded.b5,"
    " b6 = b6 + excluded.b6, b7 = b7 + excluded.b7, b8 = b8 + excluded.b8,"
    " b9 = b9 + excluded.b9";

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static int step(store_conn *w, sqlite3_stmt *s, rf_err *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : store_fail(w, rc, err, what);
}

static int apply_ledger_row(store_conn *w, const ledger_row *r, rf_err *err)
{
    sqlite3_stmt *s = store_stmt(w, SQL_LEDGER, err);
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, r->ref ? r->ref : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, r->at_ms);
    bind_text_or_null(s, 3, r->path);
    sqlite3_bind_text(s, 4, r->tier ? r->tier : "", -1, SQLITE_STATIC);
    bind_text_or_null(s, 5, r->tag);
    sqlite3_bind_text(s, 6, r->provider ? r->provider : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, r->model ? r->model : "", -1, SQLITE_STATIC);
    bind_text_or_null(s, 8, r->upstream);
    if (r->has_cost)
        sqlite3_bind_int64(s, 9, r->cost_nusd);
    else
        sqlite3_bind_null(s, 9);
    sqlite3_bind_int(s, 10, r->estimated);
    bind_text_or_null(s, 11, r->note);
    if (r->prompt_tokens >= 0)
        sqlite3_bind_int64(s, 12, r->prompt_tokens);
    else
        sqlite3_bind_null(s, 12);
    if (r->completion_tokens >= 0)
        sqlite3_bind_int64(s, 13, r->completion_tokens);
    else
        sqlite3_bind_null(s, 13);
    if (step(w, s, err, "record spend") < 0)
        return -1;
    sqlite3_stmt *d = store_stmt(w, SQL_SPEND_DAY, err);
    if (!d)
        return -1;
    sqlite3_bind_int64(d, 1, day_of(r->at_ms));
    sqlite3_bind_text(d, 2, r->tier ? r->tier : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 3, r->tag ? r->tag : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 4, r->provider ? r->provider : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 5, r->model ? r->model : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 6, r->upstream ? r->upstream : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(d, 7, r->has_cost ? r->cost_nusd : 0);
    sqlite3_bind_int(d, 8, !r->has_cost);
    sqlite3_bind_int(d, 9, r->estimated != 0);
    return step(w, d, err, "record spend");
}

static int apply_activity(store_conn *w, const char *line, int64_t at_ms, rf_err *err)
{
    sqlite3_stmt *e = store_stmt(w, SQL_ACTIVITY_END, err);
    if (!e)
        return -1;
    int rc = sqlite3_step(e);
    int64_t off = rc == SQLITE_ROW ? sqlite3_column_int64(e, 0) : 0;
    sqlite3_reset(e);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(w, rc, err, "append activity");
    sqlite3_stmt *s = store_stmt(w, SQL_ACTIVITY, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, off);
    sqlite3_bind_int64(s, 2, at_ms);
    sqlite3_bind_text(s, 3, line, -1, SQLITE_STATIC);
    return step(w, s, err, "append activity");
}

static int latency_bucket(long ms)
{
    int b = 0;
    while (b < STORE_LATENCY_BUCKETS - 1 && ms > store_latency_bounds_ms[b])
        b++;
    return b;
}

static int apply_attempt(store_conn *w, const attempt_stat *a, rf_err *err)
{
    sqlite3_stmt *s = store_stmt(w, SQL_PROVIDER_DAY, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, day_of(a->at_ms));
    sqlite3_bind_text(s, 2, a->provider ? a->provider : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, a->failed != 0);
    sqlite3_bind_int(s, 4, a->fell_back != 0);
    sqlite3_bind_int64(s, 5, a->latency_ms > 0 ? a->latency_ms : 0);
    sqlite3_bind_int(s, 6, latency_bucket(a->latency_ms));
    return step(w, s, err, "record provider counts");
}

static int apply_commit(store_conn *w, store_op *op, rf_err *err)
{
    job_commit *c = (job_commit *)op;
    c->installed = 0;
    if (c->path) {
        sqlite3_stmt *s = store_stmt(w, SQL_RESULT, err);
        if (!s)
            return -1;
        sqlite3_bind_text(s, 1, c->path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, c->gen);
        sqlite3_bind_int(s, 3, (int)c->state);
        sqlite3_bind_int64(s, 4, c->finished_ms);
        if (c->out)
            sqlite3_bind_blob(s, 5, c->out_len ? c->out : "", (int)c->out_len, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 5);
        sqlite3_bind_int64(s, 6, c->out ? (sqlite3_int64)c->out_len : 0);
        bind_text_or_null(s, 7, c->meta);
        bind_text_or_null(s, 8, c->err);
        if (step(w, s, err, "save a result") < 0)
            return -1;
        c->installed = sqlite3_changes(store_conn_db(w)) > 0;
    }
    for (size_t i = 0; i < c->nledger; i++)
        if (apply_ledger_row(w, &c->ledger[i], err) < 0)
            return -1;
    if (c->installed && c->activity && apply_activity(w, c->activity, c->finished_ms, err) < 0)
        return -1;
    for (size_t i = 0; i < c->nattempts; i++)
        if (apply_attempt(w, &c->attempts[i], err) < 0)
            return -1;
    return 0;
}

static void commit_done(store_op *op, int status, const rf_err *err)
{
    job_commit *c = (job_commit *)op;
    if (c->on_done)
        c->on_done(c, status, err);
    job_commit_free(c);
}

void sl_submit(store *st, job_commit *c)
{
    c->op.apply = apply_commit;
    c->op.done = commit_done;
    c->op.flags = STORE_OP_DURABLE | STORE_OP_HELD | STORE_OP_PAID;
    store_submit(st, &c->op);
}

/* ---- reads ---- */

static const char SQL_FOLD[] =
    "SELECT day, tier, tag, provider, model, upstream, nusd, requests, unpriced, estimated"
    " FROM spend_days";

int sl_fold_spend(store *st, int (*fn)(const spend_day_row *r, void *ud), void *ud, rf_err *err)
{
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, SQL_FOLD, err);
    int r = 0;
    if (!s) {
        r = -err->code;
    } else {
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            spend_day_row row = {
                .day = sqlite3_column_int64(s, 0),
                .tier = (const char *)sqlite3_column_text(s, 1),
                .tag = (const char *)sqlite3_column_text(s, 2),
                .provider = (const char *)sqlite3_column_text(s, 3),
                .model = (const char *)sqlite3_column_text(s, 4),
                .upstream = (const char *)sqlite3_column_text(s, 5),
                .nusd = sqlite3_column_int64(s, 6),
                .requests = (long)sqlite3_column_int64(s, 7),
                .unpriced = (long)sqlite3_column_int64(s, 8),
                .estimated = (long)sqlite3_column_int64(s, 9),
            };
            if (!row.tier || !row.tag || !row.provider || !row.model || !row.upstream)
                continue;
            if (fn(&row, ud))
                break;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            store_fail(c, rc, err, "read spend");
            r = -err->code;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}

static const char SQL_ACT_BOUNDS[] =
    "SELECT (SELECT off FROM activity ORDER BY seq LIMIT 1),"
    " (SELECT off + length(CAST(line AS BLOB)) FROM activity ORDER BY seq DESC LIMIT 1)";
static const char SQL_ACT_AT[] =
    "SELECT off, line FROM activity WHERE off <= ?1 ORDER BY off DESC LIMIT 1";
static const char SQL_ACT_AFTER[] =
    "SELECT off, line FROM activity WHERE off > ?1 ORDER BY off LIMIT 256";

static int activity_bounds(store_conn *c, int64_t *base, int64_t *end, rf_err *err)
{
    sqlite3_stmt *s = store_stmt(c, SQL_ACT_BOUNDS, err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    *base = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    *end = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return store_fail(c, rc, err, "read activity");
    return 0;
}

int64_t sl_activity_size(store *st)
{
    rf_err err;
    store_conn *c = store_reader(st, &err);
    if (!c)
        return 0;
    int64_t base = 0, end = 0;
    int r = activity_bounds(c, &base, &end, &err);
    store_reader_done(st, c);
    return r < 0 || end < base ? 0 : end - base;
}

/* Copy the part of a line at file offset line_off that overlaps [want, want+size). */
static size_t copy_overlap(const char *line, size_t len, int64_t line_off, int64_t want,
                           char *buf, size_t size, size_t have)
{
    int64_t from = want + (int64_t)have;          /* the next byte the caller needs */
    if (from < line_off || from >= line_off + (int64_t)len)
        return 0;
    size_t skip = (size_t)(from - line_off);
    size_t n = len - skip;
    if (n > size - have)
        n = size - have;
    memcpy(buf + have, line + skip, n);
    return n;
}

long sl_activity_read(store *st, int64_t off, char *buf, size_t size, rf_err *err)
{
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    long r = -1;
    int64_t base = 0, end = 0;
    /* One read transaction: the lines do not move between the queries. */
    if (sqlite3_exec(store_conn_db(c), "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        activity_bounds(c, &base, &end, err) < 0) {
        if (!err->code)
            rf_err_set(err, EIO, "cannot read activity");
        goto out;
    }
    int64_t want = base + off;
    size_t have = 0;
    sqlite3_stmt *s = store_stmt(c, SQL_ACT_AT, err);
    if (!s)
        goto out;
    sqlite3_bind_int64(s, 1, want);
    int64_t last_off = want;
    if (sqlite3_step(s) == SQLITE_ROW) {
        int64_t lo = sqlite3_column_int64(s, 0);
        const char *line = (const char *)sqlite3_column_text(s, 1);
        have += copy_overlap(line ? line : "", (size_t)sqlite3_column_bytes(s, 1), lo, want, buf,
                             size, have);
        last_off = lo;
    }
    sqlite3_reset(s);
    while (have < size && want + (int64_t)have < end) {
        sqlite3_stmt *a = store_stmt(c, SQL_ACT_AFTER, err);
        if (!a)
            goto out;
        sqlite3_bind_int64(a, 1, last_off);
        int rows = 0;
        while (have < size && sqlite3_step(a) == SQLITE_ROW) {
            rows++;
            int64_t lo = sqlite3_column_int64(a, 0);
            const char *line = (const char *)sqlite3_column_text(a, 1);
            have += copy_overlap(line ? line : "", (size_t)sqlite3_column_bytes(a, 1), lo, want,
                                 buf, size, have);
            last_off = lo;
        }
        sqlite3_reset(a);
        if (!rows)
            break;
    }
    r = (long)have;
out:
    sqlite3_exec(store_conn_db(c), "COMMIT", NULL, NULL, NULL);
    store_reader_done(st, c);
    return r < 0 ? -(err->code ? err->code : EIO) : r;
}

/* ---- small asynchronous writes ---- */

typedef struct misc_op {
    store_op op;               /* first */
    int kind;                  /* 0 prune, 1 event, 2 price, 3 kv */
    int64_t at_ms;
    char *a, *b, *c, *d;       /* owned strings, meaning per kind */
    double x, y, z;
} misc_op;

/* Only a prefix of the file goes: the lines before the first one recent enough to keep.
 * (Lines are in commit order, and a line's clock may be behind its predecessor's; deleting
 * every old line would leave a hole that readers see as the end of the file.) */
static const char SQL_PRUNE[] =
    "DELETE FROM activity WHERE seq < coalesce((SELECT min(seq) FROM activity WHERE at_ms >= ?1),"
    " (SELECT max(seq) + 1 FROM activity))";
static const char SQL_EVENT[] =
    "INSERT INTO events(at_ms, kind, provider, model, detail) VALUES(?1, ?2, ?3, ?4, ?5)";
static const char SQL_PRICE_PUT[] =
    "INSERT OR REPLACE INTO prices(model, provider, source, prompt_per_m, completion_per_m,"
    " request_usd, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_KV_PUT[] =
    "INSERT OR REPLACE INTO kv(key, value, updated_ms) VALUES(?1, ?2, ?3)";

static int apply_misc(store_conn *w, store_op *op, rf_err *err)
{
    misc_op *o = (misc_op *)op;
    static const char *const sql[] = {SQL_PRUNE, SQL_EVENT, SQL_PRICE_PUT, SQL_KV_PUT};
    sqlite3_stmt *s = store_stmt(w, sql[o->kind], err);
    if (!s)
        return -1;
    switch (o->kind) {
    case 0:
        sqlite3_bind_int64(s, 1, o->at_ms);
        break;
    case 1:
        sqlite3_bind_int64(s, 1, o->at_ms);
        sqlite3_bind_text(s, 2, o->a, -1, SQLITE_STATIC);
        bind_text_or_null(s, 3, o->b);
        bind_text_or_null(s, 4, o->c);
        bind_text_or_null(s, 5, o->d);
        break;
    case 2:
        sqlite3_bind_text(s, 1, o->a, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, o->b ? o->b : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, o->c, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 4, o->x);
        sqlite3_bind_double(s, 5, o->y);
        sqlite3_bind_double(s, 6, o->z);
        sqlite3_bind_int64(s, 7, o->at_ms);
        break;
    default:
        sqlite3_bind_text(s, 1, o->a, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, o->b, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, o->at_ms);
        break;
    }
    return step(w, s, err, "record");
}

static void misc_done(store_op *op, int status, const rf_err *err)
{
    misc_op *o = (misc_op *)op;
    free(o->a);
    free(o->b);
    free(o->c);
    free(o->d);
    free(o);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void submit_misc(store *st, misc_op *o, unsigned flags)
{
    o->op.apply = apply_misc;
    o->op.done = misc_done;
    o->op.flags = flags;
    store_submit(st, &o->op);
}

void sl_activity_prune(store *st, int64_t before_ms)
{
    misc_op *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->kind = 0;
    o->at_ms = before_ms;
    submit_misc(st, o, 0);
}

void sl_event(store *st, const char *kind, const char *provider, const char *model,
              const char *detail)
{
    misc_op *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->kind = 1;
    o->at_ms = now_wall_ms();
    o->a = strdup(kind);
    o->b = dup_or_null(provider);
    o->c = dup_or_null(model);
    o->d = dup_or_null(detail);
    if (!o->a) {
        misc_done(&o->op, 0, NULL);
        return;
    }
    submit_misc(st, o, 0);
}

void sl_price_put(store *st, const price_row *row)
{
    misc_op *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->kind = 2;
    o->a = strdup(row->model);
    o->b = dup_or_null(row->provider);
    o->c = strdup(row->source);
    o->x = row->prompt_per_m;
    o->y = row->completion_per_m;
    o->z = row->request_usd;
    o->at_ms = row->updated_ms;
    if (!o->a || !o->c) {
        misc_done(&o->op, 0, NULL);
        return;
    }
    submit_misc(st, o, STORE_OP_HELD);
}

void sl_kv_put(store *st, const char *key, const char *value)
{
    misc_op *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->kind = 3;
    o->a = strdup(key);
    o->b = strdup(value);
    o->at_ms = now_wall_ms();
    if (!o->a || !o->b) {
        misc_done(&o->op, 0, NULL);
        return;
    }
    submit_misc(st, o, STORE_OP_HELD);
}

/* Replacing a source's prices is one synchronous op (the caller waits). */
typedef struct prices_op {
    store_op op;
    const char *source;
    const price_row *rows;
    size_t n;
} prices_op;

static const char SQL_PRICES_CLEAR[] = "DELETE FROM prices WHERE source = ?1";

static int apply_prices(store_conn *w, store_op *op, rf_err *err)
{
    prices_op *o = (prices_op *)op;
    sqlite3_stmt *d = store_stmt(w, SQL_PRICES_CLEAR, err);
    if (!d)
        return -1;
    sqlite3_bind_text(d, 1, o->source, -1, SQLITE_STATIC);
    if (step(w, d, err, "replace prices") < 0)
        return -1;
    for (size_t i = 0; i < o->n; i++) {
        sqlite3_stmt *s = store_stmt(w, SQL_PRICE_PUT, err);
        if (!s)
            return -1;
        const price_row *r = &o->rows[i];
        sqlite3_bind_text(s, 1, r->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, r->provider ? r->provider : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, o->source, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 4, r->prompt_per_m);
        sqlite3_bind_double(s, 5, r->completion_per_m);
        sqlite3_bind_double(s, 6, r->request_usd);
        sqlite3_bind_int64(s, 7, r->updated_ms);
        if (step(w, s, err, "replace prices") < 0)
            return -1;
    }
    return 0;
}

int sl_prices_replace(store *st, const char *source, const price_row *rows, size_t n, rf_err *err)
{
    prices_op o = {.op = {.apply = apply_prices, .flags = STORE_OP_DURABLE}, .source = source,
                   .rows = rows, .n = n};
    return store_run(st, &o.op, err);
}

static const char SQL_PRICES_LOAD[] =
    "SELECT model, provider, source, prompt_per_m, completion_per_m, request_usd, updated_ms"
    " FROM prices";

int sl_prices_load(store *st, int (*fn)(const price_row *r, void *ud), void *ud, rf_err *err)
{
    store_conn *c = store_reader(st, err);
    if (!c)
        return -err->code;
    sqlite3_stmt *s = store_stmt(c, SQL_PRICES_LOAD, err);
    int r = 0;
    if (!s) {
        r = -err->code;
    } else {
        while (sqlite3_step(s) == SQLITE_ROW) {
            price_row p = {
                .model = (const char *)sqlite3_column_text(s, 0),
                .provider = (const char *)sqlite3_column_text(s, 1),
                .source = (const char *)sqlite3_column_text(s, 2),
                .prompt_per_m = sqlite3_column_double(s, 3),
                .completion_per_m = sqlite3_column_double(s, 4),
                .request_usd = sqlite3_column_double(s, 5),
                .updated_ms = sqlite3_column_int64(s, 6),
            };
            if (p.model && p.source && fn(&p, ud))
                break;
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return r;
}

static const char SQL_KV_GET[] = "SELECT value, updated_ms FROM kv WHERE key = ?1";

char *sl_kv_get(store *st, const char *key, int64_t *updated_ms)
{
    rf_err err;
    if (updated_ms)
        *updated_ms = 0;
    store_conn *c = store_reader(st, &err);
    if (!c)
        return NULL;
    sqlite3_stmt *s = store_stmt(c, SQL_KV_GET, &err);
    char *v = NULL;
    if (s) {
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(s, 0);
            v = t ? strdup(t) : NULL;
            if (updated_ms)
                *updated_ms = sqlite3_column_int64(s, 1);
        }
        sqlite3_reset(s);
    }
    store_reader_done(st, c);
    return v;
}
