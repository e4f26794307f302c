/* test_store_ledger.c — store_ledger.c: a finished job's commit (results only for its
 * generation, ledger rows and daily totals always), activity.jsonl read at every offset
 * and size and pruned, the providers' daily counts, events, prices and named values
 * (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_prompts.h"
#include "store_test.h"

#define DAY_MS 86400000LL

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    tst_tempdir(fx->dir, sizeof fx->dir, "ledger");
    fx->st = tst_open(fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    store_close(fx->st);
    tst_rmrf(fx->dir);
    free(fx);
    return 0;
}

static void install(fixture *fx, const char *path, int64_t gen)
{
    prompt_attrs a = {.mode = 0644};
    rf_err err;
    assert_int_equal(sp_install(fx->st, path, "q", 1, 1, gen, PS_PENDING, &a, 1, &err), 0);
}

/* Commit synchronously (submit, flush); the outcome in *o. */
static void commit(fixture *fx, job_commit *c, tst_outcome *o)
{
    memset(o, 0, sizeof *o);
    c->on_done = tst_commit_done;
    c->ud = o;
    sl_submit(fx->st, c);
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(tst_calls(o), 1);
    assert_int_equal(o->status, 0);
}

static job_commit *result_commit(const char *path, int64_t gen, const char *activity,
                                 int64_t finished_ms)
{
    job_commit *c = job_commit_new();
    assert_non_null(c);
    c->path = tst_dup(path);
    c->gen = gen;
    c->state = PS_DONE;
    c->finished_ms = finished_ms;
    c->out = tst_dup("answer");
    c->out_len = 6;
    c->meta = tst_dup("{}");
    c->activity = tst_dup(activity);
    return c;
}

static void add_rows(job_commit *c, int n, const char *ref, int64_t at_ms)
{
    c->ledger = calloc((size_t)n, sizeof *c->ledger);
    assert_non_null(c->ledger);
    for (int i = 0; i < n; i++) {
        char r[64];
        snprintf(r, sizeof r, "%s#%d", ref, i);
        c->ledger[i] = tst_row(r, at_ms, "fast", i ? "docs" : NULL, "or", "m-a",
                               i % 2 ? "Upstream" : NULL, i == 2 ? -1 : 0.25, i == 1);
    }
    c->nledger = (size_t)n;
}

static int64_t q(fixture *fx, const char *sql)
{
    return tst_query_int(fx->st, sql, -1);
}

/* ---- the commit ---- */

static void test_commit_only_for_its_generation(void **state)
{
    fixture *fx = *state;
    rf_err err;
    install(fx, "t/p", 10);
    assert_int_equal(sp_replace_content(fx->st, "t/p", 10, "new", 3, 3, 11, PS_PENDING, 1, 1,
                                        &err), 0);
    /* the answer to generation 10 arrives after the prompt moved on */
    job_commit *c = result_commit("t/p", 10, "{\"gen\":10}\n", 1000);
    add_rows(c, 3, "t/p#10", 1000);
    c->attempts = calloc(1, sizeof *c->attempts);
    assert_non_null(c->attempts);
    c->attempts[0] = (attempt_stat){tst_dup("or"), 0, 0, 120, 1000};
    c->nattempts = 1;
    tst_outcome o;
    commit(fx, c, &o);
    assert_int_equal(o.installed, 0);
    prompt_row row;
    assert_int_equal(sp_get(fx->st, "t/p", &row, &err), 0);
    assert_int_equal(row.gen, 11);
    assert_int_equal(row.state, PS_PENDING);
    assert_int_equal(row.out_size + row.meta_size, 0);
    /* billed anyway: the provider charged for it */
    assert_int_equal(q(fx, "SELECT count(*) FROM ledger"), 3);
    assert_int_equal(q(fx, "SELECT sum(requests) FROM spend_days"), 3);
    assert_int_equal(q(fx, "SELECT sum(requests) FROM provider_days"), 1);
    assert_int_equal(sl_activity_size(fx->st), 0);          /* no job of this prompt ended */

    c = result_commit("t/p", 11, "{\"gen\":11}\n", 2000);
    add_rows(c, 1, "t/p#11", 2000);
    commit(fx, c, &o);
    assert_int_equal(o.installed, 1);
    assert_int_equal(sp_get(fx->st, "t/p", &row, &err), 0);
    assert_int_equal(row.state, PS_DONE);
    assert_int_equal(row.finished_ms, 2000);
    assert_int_equal(row.out_size, 6);
    assert_int_equal(q(fx, "SELECT count(*) FROM ledger"), 4);
    assert_int_equal(sl_activity_size(fx->st), (int64_t)strlen("{\"gen\":11}\n"));

    /* ledger rows only (no prompt): recorded, nothing installed */
    c = job_commit_new();
    add_rows(c, 2, "orphan", 3000);
    commit(fx, c, &o);
    assert_int_equal(o.installed, 0);
    assert_int_equal(q(fx, "SELECT count(*) FROM ledger"), 6);

    /* the row as stored */
    assert_int_equal(q(fx, "SELECT count(*) FROM ledger WHERE ref = 't/p#10#1' AND at_ms = 1000"
                           " AND path IS NULL AND tier = 'fast' AND tag = 'docs'"
                           " AND provider = 'or' AND model = 'm-a' AND upstream = 'Upstream'"
                           " AND cost_nusd = 250000000 AND estimated = 1"
                           " AND note = 'no usage reported' AND prompt_tokens = 100"
                           " AND completion_tokens = 20"), 1);
    assert_int_equal(q(fx, "SELECT count(*) FROM ledger WHERE ref = 't/p#10#2'"
                           " AND cost_nusd IS NULL AND estimated = 0 AND note IS NULL"), 1);
    assert_int_equal(q(fx, "SELECT count(*) FROM ledger WHERE ref = 't/p#10#0'"
                           " AND tag IS NULL AND upstream IS NULL"), 1);
    /* unknown token counts are NULL, not -1 */
    c = job_commit_new();
    add_rows(c, 1, "tokens", 3000);
    c->ledger[0].prompt_tokens = -1;
    c->ledger[0].completion_tokens = -1;
    commit(fx, c, &o);
    assert_int_equal(q(fx, "SELECT count(*) FROM ledger WHERE ref = 'tokens#0'"
                           " AND prompt_tokens IS NULL AND completion_tokens IS NULL"), 1);
}

typedef struct fold {
    int n, stop_after;
    spend_day_row rows[16];
    char names[16][5][32];
} fold;

static int fold_fn(const spend_day_row *r, void *ud)
{
    fold *f = ud;
    if (f->n < 16) {
        f->rows[f->n] = *r;
        const char *names[5] = {r->tier, r->tag, r->provider, r->model, r->upstream};
        for (int i = 0; i < 5; i++)
            snprintf(f->names[f->n][i], 32, "%s", names[i]);
    }
    f->n++;
    return f->stop_after && f->n >= f->stop_after;
}

static void test_spend_days(void **state)
{
    fixture *fx = *state;
    int64_t day = 19792;                     /* 2024-03-10 */
    job_commit *c = job_commit_new();
    c->ledger = calloc(6, sizeof *c->ledger);
    c->ledger[0] = tst_row("a", day * DAY_MS + 1, "fast", NULL, "or", "m", NULL, 1.5, 0);
    c->ledger[1] = tst_row("b", day * DAY_MS + DAY_MS - 1, "fast", NULL, "or", "m", NULL, 0.5, 1);
    c->ledger[2] = tst_row("c", day * DAY_MS + 7, "fast", NULL, "or", "m", NULL, -1, 0);
    c->ledger[3] = tst_row("d", (day + 1) * DAY_MS, "fast", NULL, "or", "m", NULL, 2, 0);
    c->ledger[4] = tst_row("e", day * DAY_MS, "fast", "docs", "or", "m", "Up", 3, 0);
    c->ledger[5] = tst_row("f", -1, "slow", NULL, "x", "y", NULL, 1, 0);  /* before 1970 */
    c->nledger = 6;
    tst_outcome o;
    commit(fx, c, &o);
    fold f = {0};
    rf_err err;
    assert_int_equal(sl_fold_spend(fx->st, fold_fn, &f, &err), 0);
    assert_int_equal(f.n, 4);
    int seen = 0;
    for (int i = 0; i < f.n; i++) {
        const spend_day_row *r = &f.rows[i];
        if (r->day == day && !strcmp(f.names[i][1], "")) {
            assert_string_equal(f.names[i][0], "fast");
            assert_string_equal(f.names[i][4], "");
            assert_int_equal(r->nusd, 2000000000);
            assert_int_equal(r->requests, 3);
            assert_int_equal(r->unpriced, 1);
            assert_int_equal(r->estimated, 1);
            seen |= 1;
        } else if (r->day == day) {
            assert_string_equal(f.names[i][1], "docs");
            assert_string_equal(f.names[i][4], "Up");
            assert_int_equal(r->nusd, 3000000000);
            seen |= 2;
        } else if (r->day == day + 1) {
            assert_int_equal(r->nusd, 2000000000);
            assert_int_equal(r->requests, 1);
            seen |= 4;
        } else {
            assert_int_equal(r->day, -1);
            assert_string_equal(f.names[i][0], "slow");
            seen |= 8;
        }
    }
    assert_int_equal(seen, 15);
    fold g = {.stop_after = 2};
    assert_int_equal(sl_fold_spend(fx->st, fold_fn, &g, &err), 0);
    assert_int_equal(g.n, 2);
}

/* ---- activity.jsonl ---- */

static char *read_activity(fixture *fx, int64_t off, size_t size, long *got)
{
    char *buf = malloc(size + 1);
    assert_non_null(buf);
    rf_err err;
    *got = sl_activity_read(fx->st, off, buf, size, &err);
    assert_true(*got >= 0);
    return buf;
}

/* Every offset and size against the expected text. */
static void check_activity(fixture *fx, const char *want)
{
    int64_t len = (int64_t)strlen(want);
    assert_int_equal(sl_activity_size(fx->st), len);
    for (int64_t off = 0; off <= len + 2; off++) {
        for (size_t size = 1; size <= (size_t)len + 3; size++) {
            long got;
            char *buf = read_activity(fx, off, size, &got);
            int64_t expect = off >= len ? 0 : (len - off < (int64_t)size ? len - off : (int64_t)size);
            if (got != expect || (got && memcmp(buf, want + off, (size_t)got)))
                fail_msg("read(off %lld, size %zu): got %ld bytes, want %lld", (long long)off,
                         size, got, (long long)expect);
            free(buf);
        }
    }
}

static void add_activity(fixture *fx, const char *path, int64_t gen, const char *line,
                         int64_t at_ms)
{
    install(fx, path, gen);
    tst_outcome o;
    commit(fx, result_commit(path, gen, line, at_ms), &o);
    assert_int_equal(o.installed, 1);
}

static void test_activity_reads(void **state)
{
    fixture *fx = *state;
    long got;
    char *buf = read_activity(fx, 0, 16, &got);    /* empty */
    assert_int_equal(got, 0);
    free(buf);
    assert_int_equal(sl_activity_size(fx->st), 0);
    static const char *const lines[] = {
        "{\"n\":1}\n", "{\"n\":22,\"s\":\"\xc3\xa9t\xc3\xa9\"}\n", "\n",
        "{\"n\":333,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n", "{}\n",
    };
    char want[512] = "";
    for (int i = 0; i < 5; i++) {
        char path[16];
        snprintf(path, sizeof path, "t/a%d", i);
        add_activity(fx, path, 100 + i, lines[i], 1000 + i);
        strcat(want, lines[i]);
    }
    check_activity(fx, want);
    /* an offset far past the end */
    buf = read_activity(fx, 1 << 30, 16, &got);
    assert_int_equal(got, 0);
    free(buf);

    /* pruning: the file restarts at the oldest kept line */
    sl_activity_prune(fx->st, 1002);
    assert_int_equal(store_flush(fx->st), 0);
    char kept[512] = "";
    for (int i = 2; i < 5; i++)
        strcat(kept, lines[i]);
    check_activity(fx, kept);
    /* and goes on growing */
    add_activity(fx, "t/more", 200, "{\"more\":1}\n", 5000);
    strcat(kept, "{\"more\":1}\n");
    check_activity(fx, kept);
    sl_activity_prune(fx->st, 1 << 30);             /* everything */
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(sl_activity_size(fx->st), 0);
    add_activity(fx, "t/again", 201, "{\"again\":1}\n", 6000);
    check_activity(fx, "{\"again\":1}\n");
}

/* A line whose clock is behind its predecessor's (two jobs finishing in the same
 * millisecond on two threads, a clock step): pruning must not leave a hole in the file. */
static void test_activity_prune_keeps_file_contiguous(void **state)
{
    fixture *fx = *state;
    add_activity(fx, "t/a", 1, "{\"a\":1}\n", 100);
    add_activity(fx, "t/b", 2, "{\"b\":2}\n", 300);
    add_activity(fx, "t/c", 3, "{\"c\":3}\n", 200);   /* out of order */
    add_activity(fx, "t/d", 4, "{\"d\":4}\n", 400);
    sl_activity_prune(fx->st, 250);
    assert_int_equal(store_flush(fx->st), 0);
    check_activity(fx, "{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n");
}

/* A line given without its '\n' (store_ledger.h says "without '\n'") still ends one. */
static void test_activity_line_without_newline(void **state)
{
    fixture *fx = *state;
    add_activity(fx, "t/a", 1, "{\"a\":1}", 100);
    add_activity(fx, "t/b", 2, "{\"b\":2}\n", 200);
    check_activity(fx, "{\"a\":1}\n{\"b\":2}\n");
}

/* More lines than one page of the reader's query. */
static void test_activity_many_lines(void **state)
{
    fixture *fx = *state;
    enum { N = 700 };
    job_commit *cs[N];
    static char want[N * 24];
    want[0] = '\0';
    for (int i = 0; i < N; i++) {
        char path[16], line[24];
        snprintf(path, sizeof path, "t/m%d", i);
        snprintf(line, sizeof line, "{\"i\":%d}\n", i);
        install(fx, path, 1000 + i);
        cs[i] = result_commit(path, 1000 + i, line, 10000 + i);
        strcat(want, line);
    }
    for (int i = 0; i < N; i++)
        sl_submit(fx->st, cs[i]);
    assert_int_equal(store_flush(fx->st), 0);
    size_t len = strlen(want);
    assert_int_equal(sl_activity_size(fx->st), (int64_t)len);
    long got;
    char *buf = read_activity(fx, 0, len + 100, &got);
    assert_int_equal(got, (long)len);
    assert_memory_equal(buf, want, len);
    free(buf);
    buf = read_activity(fx, 5, len, &got);          /* from inside the first line */
    assert_int_equal(got, (long)len - 5);
    assert_memory_equal(buf, want + 5, len - 5);
    free(buf);
    for (int64_t off = 0; off < (int64_t)len; off += 997) {   /* 4 KiB reads, like cat */
        buf = read_activity(fx, off, 4096, &got);
        size_t expect = len - (size_t)off < 4096 ? len - (size_t)off : 4096;
        assert_int_equal(got, (long)expect);
        assert_memory_equal(buf, want + off, expect);
        free(buf);
    }
}

/* ---- providers' daily counts ---- */

static void test_provider_days(void **state)
{
    fixture *fx = *state;
    static const long latencies[] = {0, 100, 101, 250, 251, 60000, 60001, -5};
    static const int buckets[] = {0, 0, 1, 1, 2, 8, 9, 0};
    int64_t day = 19792;
    job_commit *c = job_commit_new();
    c->attempts = calloc(10, sizeof *c->attempts);
    for (int i = 0; i < 8; i++)
        c->attempts[i] = (attempt_stat){tst_dup("or"), i == 3, i == 4, latencies[i],
                                        day * DAY_MS + i};
    c->attempts[8] = (attempt_stat){tst_dup("or"), 1, 0, 10, (day + 1) * DAY_MS};
    c->attempts[9] = (attempt_stat){tst_dup("other"), 0, 1, 3000, day * DAY_MS};
    c->nattempts = 10;
    tst_outcome o;
    commit(fx, c, &o);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT requests * 1000000 + failures * 1000 + fallbacks FROM "
             "provider_days WHERE day = %lld AND provider = 'or'", (long long)day);
    assert_int_equal(q(fx, sql), 8001001);
    snprintf(sql, sizeof sql, "SELECT latency_ms_sum FROM provider_days WHERE day = %lld AND "
             "provider = 'or'", (long long)day);
    assert_int_equal(q(fx, sql), 0 + 100 + 101 + 250 + 251 + 60000 + 60001);
    int want[STORE_LATENCY_BUCKETS] = {0};
    for (int i = 0; i < 8; i++)
        want[buckets[i]]++;
    for (int b = 0; b < STORE_LATENCY_BUCKETS; b++) {
        snprintf(sql, sizeof sql, "SELECT b%d FROM provider_days WHERE day = %lld AND "
                 "provider = 'or'", b, (long long)day);
        if (q(fx, sql) != want[b])
            fail_msg("bucket b%d: %lld, want %d", b, (long long)q(fx, sql), want[b]);
    }
    snprintf(sql, sizeof sql, "SELECT requests * 1000 + failures FROM provider_days WHERE "
             "day = %lld AND provider = 'or'", (long long)day + 1);
    assert_int_equal(q(fx, sql), 1001);
    assert_int_equal(q(fx, "SELECT fallbacks * 10 + b5 FROM provider_days WHERE provider = 'other'"),
                     11);
    assert_int_equal(store_latency_bounds_ms[0], 100);
    assert_int_equal(store_latency_bounds_ms[STORE_LATENCY_BUCKETS - 2], 60000);
}

/* ---- events, prices, named values ---- */

static void test_events(void **state)
{
    fixture *fx = *state;
    int64_t before = tst_wall_ms();
    sl_event(fx->st, "breaker_open", "or", "m-a", "5 failures");
    sl_event(fx->st, "store_failing", NULL, NULL, NULL);
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(q(fx, "SELECT count(*) FROM events"), 2);
    assert_int_equal(q(fx, "SELECT count(*) FROM events WHERE kind = 'breaker_open' AND "
                           "provider = 'or' AND model = 'm-a' AND detail = '5 failures'"), 1);
    assert_int_equal(q(fx, "SELECT count(*) FROM events WHERE kind = 'store_failing' AND "
                           "provider IS NULL AND model IS NULL AND detail IS NULL"), 1);
    assert_true(q(fx, "SELECT min(at_ms) FROM events") >= before);
}

typedef struct prices_seen {
    int n;
    char text[8][128];
} prices_seen;

static int price_fn(const price_row *r, void *ud)
{
    prices_seen *p = ud;
    if (p->n < 8)
        snprintf(p->text[p->n], sizeof p->text[p->n], "%s|%s|%s|%g|%g|%g|%lld", r->model,
                 r->provider, r->source, r->prompt_per_m, r->completion_per_m, r->request_usd,
                 (long long)r->updated_ms);
    p->n++;
    return 0;
}

static int has_price(const prices_seen *p, const char *text)
{
    for (int i = 0; i < p->n && i < 8; i++)
        if (!strcmp(p->text[i], text))
            return 1;
    return 0;
}

static void test_prices(void **state)
{
    fixture *fx = *state;
    rf_err err;
    price_row pub[] = {
        {"m-a", NULL, "openrouter", 1.5, 2.5, 0.001, 10},
        {"m-b", "", "openrouter", 3, 4, 0, 10},
    };
    assert_int_equal(sl_prices_replace(fx->st, "openrouter", pub, 2, &err), 0);
    price_row obs = {"m-a", "or", "observed", 9, 9, 0, 20};
    sl_price_put(fx->st, &obs);
    assert_int_equal(store_flush(fx->st), 0);
    prices_seen p = {0};
    assert_int_equal(sl_prices_load(fx->st, price_fn, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_true(has_price(&p, "m-a||openrouter|1.5|2.5|0.001|10"));
    assert_true(has_price(&p, "m-b||openrouter|3|4|0|10"));
    assert_true(has_price(&p, "m-a|or|observed|9|9|0|20"));
    /* replacing one source leaves the others; a put updates its row */
    price_row pub2[] = {{"m-c", NULL, "openrouter", 5, 6, 0, 30}};
    assert_int_equal(sl_prices_replace(fx->st, "openrouter", pub2, 1, &err), 0);
    obs.prompt_per_m = 12;
    obs.updated_ms = 40;
    sl_price_put(fx->st, &obs);
    assert_int_equal(store_flush(fx->st), 0);
    memset(&p, 0, sizeof p);
    assert_int_equal(sl_prices_load(fx->st, price_fn, &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_true(has_price(&p, "m-c||openrouter|5|6|0|30"));
    assert_true(has_price(&p, "m-a|or|observed|12|9|0|40"));
    assert_int_equal(sl_prices_replace(fx->st, "openrouter", NULL, 0, &err), 0);
    memset(&p, 0, sizeof p);
    assert_int_equal(sl_prices_load(fx->st, price_fn, &p, &err), 0);
    assert_int_equal(p.n, 1);
}

static void test_kv(void **state)
{
    fixture *fx = *state;
    int64_t before = tst_wall_ms(), at = -1;
    assert_null(sl_kv_get(fx->st, "openrouter.key", &at));
    assert_int_equal(at, 0);
    sl_kv_put(fx->st, "openrouter.key", "{\"limit\":10}");
    sl_kv_put(fx->st, "other", "[]");
    assert_int_equal(store_flush(fx->st), 0);
    char *v = sl_kv_get(fx->st, "openrouter.key", &at);
    assert_non_null(v);
    assert_string_equal(v, "{\"limit\":10}");
    assert_true(at >= before && at <= tst_wall_ms());
    free(v);
    sl_kv_put(fx->st, "openrouter.key", "{\"limit\":20}");
    assert_int_equal(store_flush(fx->st), 0);
    v = sl_kv_get(fx->st, "openrouter.key", NULL);
    assert_string_equal(v, "{\"limit\":20}");
    free(v);
    v = sl_kv_get(fx->st, "other", NULL);
    assert_string_equal(v, "[]");
    free(v);
}

/* A commit that is never submitted frees everything it owns (valgrind checks). */
static void test_commit_free(void **state)
{
    (void)state;
    job_commit *c = result_commit("t/p", 1, "{}\n", 1);
    c->err = tst_dup("e\n");
    add_rows(c, 3, "r", 1);
    c->attempts = calloc(2, sizeof *c->attempts);
    c->attempts[0].provider = tst_dup("or");
    c->nattempts = 2;
    job_commit_free(c);
    job_commit_free(NULL);
    ledger_row r = tst_row("x", 1, "t", "g", "p", "m", "u", 1, 1);
    ledger_row_clear(&r);
    assert_null(r.ref);
    assert_null(r.note);
    assert_int_equal(r.has_cost, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_commit_only_for_its_generation),
        T(test_spend_days),
        T(test_activity_reads),
        T(test_activity_prune_keeps_file_contiguous),
        T(test_activity_line_without_newline),
        T(test_activity_many_lines),
        T(test_provider_days),
        T(test_events),
        T(test_prices),
        T(test_kv),
        cmocka_unit_test(test_commit_free),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
