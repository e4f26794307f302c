/* test_store_prompts.c — store_prompts.c: prompt rows (begin_write, replace_content by
 * generation, touch, setattr, delete, rename, install), their results, tag directories,
 * paged listings, the rows recovery looks at, job state by generation, and the filter of
 * prompt paths that answers lookups of new names (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_prompts.h"
#include "store_test.h"

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    tst_tempdir(fx->dir, sizeof fx->dir, "prompts");
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

static prompt_row get(fixture *fx, const char *path)
{
    prompt_row row;
    memset(&row, 0xa5, sizeof row);
    rf_err err;
    int r = sp_get(fx->st, path, &row, &err);
    if (r != 0)
        fail_msg("sp_get %s: %d", path, r);
    return row;
}

static void expect_absent(fixture *fx, const char *path)
{
    prompt_row row;
    rf_err err;
    assert_int_equal(sp_get(fx->st, path, &row, &err), -ENOENT);
}

/* The stored blob which of path (any generation), or NULL when it has none. */
static char *stored_blob(fixture *fx, const char *path, enum sp_blob which, int64_t gen, size_t *len)
{
    char *data = (char *)1;
    rf_err err;
    int r = sp_read(fx->st, path, which, gen, &data, len, &err);
    if (r == -ENOENT) {
        assert_null(data);
        assert_int_equal(*len, 0);
        return NULL;
    }
    assert_int_equal(r, 0);
    assert_int_equal(data[*len], '\0');
    return data;
}

static void expect_blob(fixture *fx, const char *path, enum sp_blob which, int64_t gen,
                        const char *want)
{
    size_t len = 99;
    char *data = stored_blob(fx, path, which, gen, &len);
    if (!want) {
        if (data)
            fail_msg("%s: unexpected blob %d: %s", path, which, data);
        return;
    }
    if (!data)
        fail_msg("%s: no blob %d", path, which);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    free(data);
}

static const prompt_attrs A644 = {.mode = 0644, .uid = 1000, .gid = 100, .atime_ns = 11,
                                  .mtime_ns = 12, .ctime_ns = 13};

static void install(fixture *fx, const char *path, const char *data, int64_t gen,
                    prompt_state state)
{
    rf_err err;
    int r = sp_install(fx->st, path, data, strlen(data), strlen(data) * 31, gen, state, &A644,
                       1000, &err);
    if (r != 0)
        fail_msg("install %s: %s", path, err.msg);
}

/* Finish the job of path/gen with results (synchronously, through the writer). */
static int finish(fixture *fx, const char *path, int64_t gen, const char *out, const char *err)
{
    job_commit *c = job_commit_new();
    assert_non_null(c);
    c->path = tst_dup(path);
    c->gen = gen;
    c->state = err ? PS_FAILED : PS_DONE;
    c->finished_ms = 5555;
    c->out = tst_dup(out);
    c->out_len = out ? strlen(out) : 0;
    c->meta = tst_dup("{\"m\":1}");
    c->err = tst_dup(err);
    tst_outcome o = {0};
    c->on_done = tst_commit_done;
    c->ud = &o;
    sl_submit(fx->st, c);
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(tst_calls(&o), 1);
    assert_int_equal(o.status, 0);
    return o.installed;
}

/* ---- writing a prompt ---- */

static void test_begin_write_and_replace(void **state)
{
    fixture *fx = *state;
    rf_err err;
    prompt_row row;
    memset(&row, 0xa5, sizeof row);                /* padding compares equal below */
    prompt_attrs a = {.mode = 0640, .uid = 1001, .gid = 101, .mtime_ns = 123};
    assert_int_equal(sp_begin_write(fx->st, "t/a", 10, &a, 5000, &row, &err), 0);
    assert_int_equal(row.gen, 10);
    assert_int_equal(row.state, PS_EMPTY);
    assert_int_equal(row.writing, 1);
    assert_int_equal(row.size, 0);
    assert_int_equal(row.attrs.mode, 0640);
    assert_int_equal(row.attrs.uid, 1001);
    assert_int_equal(row.attrs.gid, 101);
    assert_int_equal(row.attrs.atime_ns, 123);
    assert_int_equal(row.attrs.mtime_ns, 123);
    assert_int_equal(row.attrs.ctime_ns, 123);
    assert_int_equal(row.created_ms, 5000);
    assert_int_equal(row.out_size + row.meta_size + row.err_size, 0);
    prompt_row again = get(fx, "t/a");
    assert_memory_equal(&again, &row, sizeof row);
    expect_blob(fx, "t/a", SP_DATA, 0, "");

    assert_int_equal(sp_replace_content(fx->st, "t/a", 10, "hello", 5, 42, 11, PS_PENDING, 200,
                                        6000, &err), 0);
    row = get(fx, "t/a");
    assert_int_equal(row.gen, 11);
    assert_int_equal(row.state, PS_PENDING);
    assert_int_equal(row.size, 5);
    assert_int_equal(row.hash, 42);
    assert_int_equal(row.attrs.mtime_ns, 200);
    assert_int_equal(row.attrs.ctime_ns, 200);
    assert_int_equal(row.created_ms, 6000);
    assert_int_equal(row.writing, 1);              /* still open */
    expect_blob(fx, "t/a", SP_DATA, 11, "hello");
    expect_blob(fx, "t/a", SP_DATA, 0, "hello");
    expect_blob(fx, "t/a", SP_DATA, 10, NULL);     /* another generation */

    /* an existing prompt opened again keeps its row */
    assert_int_equal(sp_begin_write(fx->st, "t/a", 12, &A644, 7000, &row, &err), 0);
    assert_int_equal(row.gen, 11);
    assert_int_equal(row.size, 5);
    assert_int_equal(row.attrs.mode, 0640);
    sp_end_write(fx->st, "t/a");
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(get(fx, "t/a").writing, 0);

    /* new content meant for an older generation changes nothing */
    rf_err_clear(&err);
    assert_int_equal(sp_replace_content(fx->st, "t/a", 10, "stale", 5, 1, 13, PS_PENDING, 1, 1,
                                        &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    assert_int_equal(get(fx, "t/a").gen, 11);
    expect_blob(fx, "t/a", SP_DATA, 0, "hello");
    assert_int_equal(sp_replace_content(fx->st, "t/none", 1, "x", 1, 1, 14, PS_PENDING, 1, 1,
                                        &err), -ENOENT);
    expect_absent(fx, "t/none");

    /* new content drops the results of the old */
    assert_int_equal(finish(fx, "t/a", 11, "answer", NULL), 1);
    row = get(fx, "t/a");
    assert_int_equal(row.state, PS_DONE);
    assert_int_equal(row.out_size, 6);
    assert_int_equal(row.finished_ms, 5555);
    assert_int_equal(sp_replace_content(fx->st, "t/a", 11, "", 0, 0, 15, PS_EMPTY, 300, 8000,
                                        &err), 0);
    row = get(fx, "t/a");
    assert_int_equal(row.state, PS_EMPTY);
    assert_int_equal(row.size, 0);
    assert_int_equal(row.out_size + row.meta_size + row.err_size, 0);
    assert_int_equal(row.finished_ms, 0);
    expect_blob(fx, "t/a", SP_DATA, 15, "");
    expect_blob(fx, "t/a", SP_OUT, 0, NULL);
    expect_blob(fx, "t/a", SP_META, 0, NULL);
    /* a path outside any directory is refused, not stored */
    assert_int_equal(sp_begin_write(fx->st, "nodir", 16, &A644, 1, &row, &err), -EINVAL);
}

/* sp_begin_new queues the insert: the row it gives is the row the store then holds, and
 * content written right after it (before any flush) lands on it. */
static void test_begin_new(void **state)
{
    fixture *fx = *state;
    rf_err err;
    prompt_row row;
    memset(&row, 0, sizeof row);
    prompt_attrs a = {.mode = 0600, .uid = 7, .gid = 8, .atime_ns = 1, .mtime_ns = 99};
    assert_int_equal(sp_begin_new(fx->st, "t/new", 20, &a, 4000, &row), 0);
    assert_int_equal(sp_replace_content(fx->st, "t/new", 20, "hi", 2, 5, 21, PS_PENDING, 300,
                                        4100, &err), 0);
    prompt_row stored = get(fx, "t/new");
    assert_int_equal(stored.gen, 21);
    assert_int_equal(stored.size, 2);
    assert_int_equal(stored.writing, 1);
    expect_blob(fx, "t/new", SP_DATA, 21, "hi");
    /* what sp_begin_new said, against a twin made by sp_begin_write */
    prompt_row twin;
    memset(&twin, 0, sizeof twin);
    assert_int_equal(sp_begin_write(fx->st, "t/twin", 20, &a, 4000, &twin, &err), 0);
    twin.id = 0;
    assert_int_equal(row.gen, twin.gen);
    assert_int_equal(row.state, twin.state);
    assert_int_equal(row.writing, twin.writing);
    assert_int_equal(row.size, twin.size);
    assert_int_equal(row.hash, twin.hash);
    assert_int_equal(row.created_ms, twin.created_ms);
    assert_memory_equal(&row.attrs, &twin.attrs, sizeof row.attrs);
}

static void test_results(void **state)
{
    fixture *fx = *state;
    install(fx, "t/ok", "q1", 20, PS_PENDING);
    install(fx, "t/bad", "q2", 21, PS_PENDING);
    assert_int_equal(finish(fx, "t/ok", 20, "the answer", NULL), 1);
    assert_int_equal(finish(fx, "t/bad", 21, NULL, "every hop failed\n"), 1);
    prompt_row ok = get(fx, "t/ok"), bad = get(fx, "t/bad");
    assert_int_equal(ok.state, PS_DONE);
    assert_int_equal(ok.out_size, 10);
    assert_int_equal(ok.meta_size, 7);
    assert_int_equal(ok.err_size, 0);
    assert_int_equal(bad.state, PS_FAILED);
    assert_int_equal(bad.out_size, 0);
    assert_int_equal(bad.err_size, 17);
    expect_blob(fx, "t/ok", SP_OUT, 20, "the answer");
    expect_blob(fx, "t/ok", SP_META, 20, "{\"m\":1}");
    expect_blob(fx, "t/ok", SP_ERR, 20, NULL);
    expect_blob(fx, "t/bad", SP_ERR, 0, "every hop failed\n");
    expect_blob(fx, "t/bad", SP_OUT, 0, NULL);
    expect_blob(fx, "t/ok", SP_OUT, 99, NULL);      /* another generation's results */
    /* a commit for a generation that is gone leaves the row alone */
    assert_int_equal(finish(fx, "t/ok", 19, "old answer", NULL), 0);
    expect_blob(fx, "t/ok", SP_OUT, 0, "the answer");
    /* binary bytes survive */
    static const char bin[] = {'a', 0, 'b', (char)0xff};
    rf_err err;
    assert_int_equal(sp_install(fx->st, "t/bin", bin, sizeof bin, 9, 22, PS_PENDING, &A644, 1,
                                &err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(sp_read(fx->st, "t/bin", SP_DATA, 22, &data, &len, &err), 0);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(data, bin, sizeof bin);
    free(data);
    /* the row and a blob in one read */
    prompt_row row;
    assert_int_equal(sp_get_with(fx->st, "t/bin", SP_DATA, &row, &data, &len, &err), 0);
    assert_int_equal(row.gen, 22);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(data, bin, sizeof bin);
    assert_int_equal(data[len], '\0');
    free(data);
    assert_int_equal(sp_get_with(fx->st, "t/ok", SP_OUT, &row, &data, &len, &err), 0);
    assert_int_equal(row.state, PS_DONE);
    assert_int_equal(row.out_size, 10);
    assert_int_equal(len, 10);
    assert_memory_equal(data, "the answer", 10);
    free(data);
    assert_int_equal(sp_get_with(fx->st, "t/ok", SP_ERR, &row, &data, &len, &err), 0);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_int_equal(sp_get_with(fx->st, "t/bad", SP_ERR, &row, &data, &len, &err), 0);
    assert_int_equal(row.state, PS_FAILED);
    assert_string_equal(data, "every hop failed\n");
    free(data);
    data = (char *)1;
    assert_int_equal(sp_get_with(fx->st, "t/none", SP_OUT, &row, &data, &len, &err), -ENOENT);
    assert_null(data);
}

/* What the writer thread told the callers of sp_queue_content, sp_queue_touch and
 * sp_end_write_then. */
static struct {
    int calls, status;
    int64_t gen;
    char data[32];
} told;

static void record_told(const char *path, int64_t gen, blob *data, int status,
                        const rf_err *err)
{
    (void)path, (void)err;
    told.calls++;
    told.status = status;
    told.gen = gen;
    snprintf(told.data, sizeof told.data, "%s", data ? data->data : "-");
}

static void test_touch_and_setattr(void **state)
{
    fixture *fx = *state;
    rf_err err;
    install(fx, "t/a", "x", 30, PS_PENDING);
    memset(&told, 0, sizeof told);
    assert_int_equal(sp_queue_touch(fx->st, "t/a", 777, record_told), 0);
    prompt_row row = get(fx, "t/a");
    assert_int_equal(told.calls, 1);
    assert_int_equal(told.status, 0);
    assert_int_equal(row.attrs.mtime_ns, 777);
    assert_int_equal(row.attrs.ctime_ns, 777);
    assert_int_equal(row.gen, 30);                  /* the same bytes: the same job */
    assert_int_equal(sp_queue_touch(fx->st, "t/none", 1, record_told), 0);
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(told.calls, 2);
    assert_int_equal(told.status, -ENOENT);

    prompt_attrs a = {.mode = 0600, .uid = 7, .gid = 8, .atime_ns = 91, .mtime_ns = 92,
                      .ctime_ns = 93};
    static const struct {
        unsigned mask;
        mode_t mode;
        uid_t uid;
        gid_t gid;
        int64_t atime, mtime;
    } steps[] = {
        {SP_ATTR_MODE, 0600, 1000, 100, 11, 777},
        {SP_ATTR_UID, 0600, 7, 100, 11, 777},
        {SP_ATTR_GID, 0600, 7, 8, 11, 777},
        {SP_ATTR_ATIME, 0600, 7, 8, 91, 777},
        {SP_ATTR_MTIME, 0600, 7, 8, 91, 92},
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        a.ctime_ns = 100 + (int64_t)i;
        assert_int_equal(sp_setattr(fx->st, "t/a", steps[i].mask, &a, &err), 0);
        row = get(fx, "t/a");
        assert_int_equal(row.attrs.mode, steps[i].mode);
        assert_int_equal(row.attrs.uid, steps[i].uid);
        assert_int_equal(row.attrs.gid, steps[i].gid);
        assert_int_equal(row.attrs.atime_ns, steps[i].atime);
        assert_int_equal(row.attrs.mtime_ns, steps[i].mtime);
        assert_int_equal(row.attrs.ctime_ns, 100 + (int64_t)i);   /* always */
    }

    /* directories take the same call */
    prompt_attrs d = {.mode = 0755, .uid = 1, .gid = 2, .mtime_ns = 50, .ctime_ns = 50};
    assert_int_equal(sp_mkdir(fx->st, "t/d", &d, &err), 0);
    a.ctime_ns = 60;
    assert_int_equal(sp_setattr(fx->st, "t/d", SP_ATTR_MODE | SP_ATTR_GID | SP_ATTR_MTIME, &a,
                                &err), 0);
    dir_row dr;
    assert_int_equal(sp_dir_get(fx->st, "t/d", &dr, &err), 0);
    assert_int_equal(dr.attrs.mode, 0600);
    assert_int_equal(dr.attrs.uid, 1);
    assert_int_equal(dr.attrs.gid, 8);
    assert_int_equal(dr.attrs.mtime_ns, 92);
    assert_int_equal(dr.attrs.ctime_ns, 60);
    rf_err_clear(&err);
    assert_int_equal(sp_setattr(fx->st, "t/none", SP_ATTR_MODE, &a, &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
}

static void test_delete(void **state)
{
    fixture *fx = *state;
    rf_err err;
    install(fx, "t/a", "x", 40, PS_PENDING);
    assert_int_equal(finish(fx, "t/a", 40, "answer", NULL), 1);
    assert_int_equal(sp_delete(fx->st, "t/a", &err), 0);
    expect_absent(fx, "t/a");
    expect_blob(fx, "t/a", SP_OUT, 0, NULL);
    assert_int_equal(sp_delete(fx->st, "t/a", &err), -ENOENT);
    /* its generation's state changes find nothing to change */
    sp_set_state(fx->st, "t/a", 40, PS_PARKED, 1, 1);
    assert_int_equal(store_flush(fx->st), 0);
    expect_absent(fx, "t/a");
}

static int collect(const sp_entry *e, void *ud);

static void test_rename(void **state)
{
    fixture *fx = *state;
    rf_err err;
    install(fx, "t/a", "qa", 50, PS_PENDING);
    install(fx, "t/b", "qb", 51, PS_PENDING);
    assert_int_equal(finish(fx, "t/a", 50, "answer a", NULL), 1);
    assert_int_equal(finish(fx, "t/b", 51, "answer b", NULL), 1);
    prompt_row a = get(fx, "t/a");

    /* onto an existing prompt: it is replaced, results move with the row */
    assert_int_equal(sp_rename(fx->st, "t/a", "t/b", &err), 0);
    expect_absent(fx, "t/a");
    prompt_row b = get(fx, "t/b");
    assert_int_equal(b.gen, 50);
    assert_int_equal(b.id, a.id);                   /* the listing order is kept */
    expect_blob(fx, "t/b", SP_DATA, 0, "qa");
    expect_blob(fx, "t/b", SP_OUT, 50, "answer a");
    expect_blob(fx, "t/b", SP_OUT, 51, NULL);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM prompts WHERE gen = 51", -1), 0);

    /* into another directory */
    prompt_attrs d = {.mode = 0755};
    assert_int_equal(sp_mkdir(fx->st, "t/sub", &d, &err), 0);
    assert_int_equal(sp_rename(fx->st, "t/b", "t/sub/c", &err), 0);
    assert_int_equal(sp_list(fx->st, "t", 0, 100, collect, NULL, &err), 0);
    assert_int_equal(sp_list(fx->st, "t/sub", 0, 100, collect, NULL, &err), 1);
    assert_int_equal(get(fx, "t/sub/c").gen, 50);
    /* the job follows: its state changes go by generation, not by path */
    sp_set_state(fx->st, "t/a", 50, PS_PARKED, 2, 99);
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(get(fx, "t/sub/c").state, PS_PARKED);

    /* a missing source changes nothing, not even the target */
    install(fx, "t/keep", "qk", 52, PS_PENDING);
    rf_err_clear(&err);
    assert_int_equal(sp_rename(fx->st, "t/none", "t/keep", &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    assert_int_equal(get(fx, "t/keep").gen, 52);
    assert_int_equal(sp_rename(fx->st, "t/keep", "toplevel", &err), -EINVAL);
    assert_int_equal(get(fx, "t/keep").gen, 52);
}

static void test_install(void **state)
{
    fixture *fx = *state;
    rf_err err;
    prompt_row row;
    prompt_attrs w = {.mode = 0600, .mtime_ns = 1};
    assert_int_equal(sp_begin_write(fx->st, "t/a", 60, &w, 1, &row, &err), 0);
    install(fx, "t/new", "fresh", 61, PS_PENDING);
    row = get(fx, "t/new");
    assert_int_equal(row.gen, 61);
    assert_int_equal(row.state, PS_PENDING);
    assert_int_equal(row.size, 5);
    assert_int_equal(row.hash, 5 * 31);
    assert_int_equal(row.attrs.mode, 0644);
    assert_int_equal(row.attrs.atime_ns, 11);
    assert_int_equal(row.attrs.mtime_ns, 12);
    assert_int_equal(row.attrs.ctime_ns, 13);
    assert_int_equal(row.created_ms, 1000);
    assert_int_equal(row.writing, 0);
    /* over an existing row (open for writing, with results): everything is replaced */
    assert_int_equal(finish(fx, "t/a", 60, "old", NULL), 1);
    install(fx, "t/a", "", 62, PS_EMPTY);
    row = get(fx, "t/a");
    assert_int_equal(row.gen, 62);
    assert_int_equal(row.state, PS_EMPTY);
    assert_int_equal(row.writing, 0);
    assert_int_equal(row.size, 0);
    assert_int_equal(row.out_size + row.meta_size, 0);
    assert_int_equal(row.attrs.mode, 0644);
    expect_blob(fx, "t/a", SP_OUT, 0, NULL);
    /* a generation must be unique */
    assert_int_equal(sp_install(fx->st, "t/other", "x", 1, 1, 61, PS_PENDING, &A644, 1, &err),
                     -EEXIST);
}

static int collect_name(const char *name, void *ud)
{
    char *buf = ud;
    strcat(buf, name);
    strcat(buf, ",");
    return 0;
}

static void test_mkdir_rmdir(void **state)
{
    fixture *fx = *state;
    rf_err err;
    prompt_attrs d = {.mode = 0750, .uid = 3, .gid = 4, .mtime_ns = 70, .ctime_ns = 70};
    assert_int_equal(sp_mkdir(fx->st, "t/d", &d, &err), 0);
    dir_row dr;
    assert_int_equal(sp_dir_get(fx->st, "t/d", &dr, &err), 0);
    assert_int_equal(dr.attrs.mode, 0750);
    assert_int_equal(dr.attrs.uid, 3);
    assert_int_equal(dr.attrs.gid, 4);
    assert_int_equal(dr.attrs.mtime_ns, 70);
    assert_int_equal(sp_dir_get(fx->st, "t/none", &dr, &err), -ENOENT);
    rf_err_clear(&err);
    assert_int_equal(sp_mkdir(fx->st, "t/d", &d, &err), -EEXIST);
    assert_int_equal(err.code, EEXIST);
    assert_int_equal(sp_mkdir(fx->st, "t/d/e", &d, &err), 0);
    assert_int_equal(sp_mkdir(fx->st, "t/c", &d, &err), 0);
    char names[128] = "";
    assert_int_equal(sp_dir_list(fx->st, "t", collect_name, names, &err), 0);
    assert_string_equal(names, "c,d,");

    assert_int_equal(sp_dir_nonempty(fx->st, "t/d", &err), 1);     /* a subdirectory */
    rf_err_clear(&err);
    assert_int_equal(sp_rmdir(fx->st, "t/d", &err), -ENOTEMPTY);
    assert_int_equal(err.code, ENOTEMPTY);
    assert_int_equal(sp_dir_nonempty(fx->st, "t/d/e", &err), 0);
    install(fx, "t/d/e/p", "x", 71, PS_PENDING);
    assert_int_equal(sp_dir_nonempty(fx->st, "t/d/e", &err), 1);   /* a prompt */
    assert_int_equal(sp_rmdir(fx->st, "t/d/e", &err), -ENOTEMPTY);
    assert_int_equal(sp_delete(fx->st, "t/d/e/p", &err), 0);
    assert_int_equal(sp_rmdir(fx->st, "t/d/e", &err), 0);
    assert_int_equal(sp_rmdir(fx->st, "t/d", &err), 0);
    assert_int_equal(sp_dir_get(fx->st, "t/d", &dr, &err), -ENOENT);
    rf_err_clear(&err);
    assert_int_equal(sp_rmdir(fx->st, "t/d", &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    names[0] = '\0';
    assert_int_equal(sp_dir_list(fx->st, "t", collect_name, names, &err), 0);
    assert_string_equal(names, "c,");
}

/* ---- listings ---- */

typedef struct listing {
    int64_t ids[400];
    char names[400][16];
    int n, stop_after;
} listing;

static int collect(const sp_entry *e, void *ud)
{
    listing *l = ud;
    if (!l)
        return 0;
    if (l->n < 400) {
        l->ids[l->n] = e->id;
        snprintf(l->names[l->n], sizeof l->names[l->n], "%s", e->name);
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void test_list_paging(void **state)
{
    fixture *fx = *state;
    rf_err err;
    for (int i = 0; i < 250; i++) {
        char path[32];
        snprintf(path, sizeof path, "t/p%03d", (i * 37) % 250);   /* ids not in name order */
        install(fx, path, "x", 100 + i, PS_PENDING);
        if (i % 25 == 0) {
            snprintf(path, sizeof path, "u/q%d", i);
            install(fx, path, "y", 1000 + i, PS_PENDING);
        }
    }
    static listing all;
    memset(&all, 0, sizeof all);
    int64_t after = 0;
    int pages = 0;
    for (;;) {
        int before = all.n;
        int n = sp_list(fx->st, "t", after, 100, collect, &all, &err);
        assert_true(n >= 0 && n <= 100);
        assert_int_equal(n, all.n - before);
        if (n == 0)
            break;
        pages++;
        after = all.ids[all.n - 1];
    }
    assert_int_equal(pages, 3);
    assert_int_equal(all.n, 250);
    for (int i = 1; i < all.n; i++)
        assert_true(all.ids[i] > all.ids[i - 1]);  /* id order, each once */
    for (int i = 0; i < all.n; i++) {
        char want[16];
        snprintf(want, sizeof want, "p%03d", (i * 37) % 250);
        assert_string_equal(all.names[i], want);
    }
    static listing u;
    memset(&u, 0, sizeof u);
    assert_int_equal(sp_list(fx->st, "u", 0, 100, collect, &u, &err), 10);
    static listing some;
    memset(&some, 0, sizeof some);
    some.stop_after = 3;                           /* the callback stops the listing */
    assert_int_equal(sp_list(fx->st, "t", 0, 100, collect, &some, &err), 3);
    assert_int_equal(sp_list(fx->st, "empty", 0, 100, collect, &some, &err), 0);
    assert_int_equal(sp_list(fx->st, "t", all.ids[249], 100, collect, &some, &err), 0);
}

typedef struct found {
    char paths[16][32];
    prompt_state states[16];
    int n;
} found;

static int collect_unfinished(const char *path, const prompt_row *row, void *ud)
{
    found *f = ud;
    if (f->n < 16) {
        snprintf(f->paths[f->n], sizeof f->paths[f->n], "%s", path);
        f->states[f->n] = row->state;
    }
    f->n++;
    return 0;
}

static void test_unfinished_and_count(void **state)
{
    fixture *fx = *state;
    rf_err err;
    install(fx, "t/pending", "x", 200, PS_PENDING);
    install(fx, "t/parked", "x", 201, PS_PARKED);
    install(fx, "t/incomplete", "x", 202, PS_INCOMPLETE);
    install(fx, "t/done", "x", 203, PS_DONE);
    install(fx, "t/failed", "x", 204, PS_FAILED);
    install(fx, "t/empty", "", 205, PS_EMPTY);
    install(fx, "t/pending2", "x", 206, PS_PENDING);
    prompt_row row;
    assert_int_equal(sp_begin_write(fx->st, "t/done", 9999, &A644, 1, &row, &err), 0);  /* open */
    found f = {0};
    assert_int_equal(sp_unfinished(fx->st, collect_unfinished, &f, &err), 0);
    assert_int_equal(f.n, 5);
    static const char *const want[] = {"t/pending", "t/parked", "t/incomplete", "t/done",
                                       "t/pending2"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(f.paths[i], want[i]);
    assert_int_equal(f.states[3], PS_DONE);
    assert_int_equal(sp_count(fx->st, PS_PENDING), 2);
    assert_int_equal(sp_count(fx->st, PS_PARKED), 1);
    assert_int_equal(sp_count(fx->st, PS_DONE), 1);
    assert_int_equal(sp_count(fx->st, PS_EMPTY), 1);
    sp_end_write(fx->st, "t/done");
    assert_int_equal(store_flush(fx->st), 0);
    f.n = 0;
    assert_int_equal(sp_unfinished(fx->st, collect_unfinished, &f, &err), 0);
    assert_int_equal(f.n, 4);
    assert_string_equal(prompt_state_name(PS_PARKED), "parked");
    assert_string_equal(prompt_state_name(PS_EMPTY), "empty");
    assert_string_equal(prompt_state_name((prompt_state)42), "unknown");
}

static void test_state_by_generation(void **state)
{
    fixture *fx = *state;
    rf_err err;
    install(fx, "t/a", "x", 300, PS_PENDING);
    sp_set_state(fx->st, "t/a", 300, PS_PARKED, 3, 123456);
    sp_mark_sent(fx->st, "t/a", 300);
    assert_int_equal(store_flush(fx->st), 0);
    prompt_row row = get(fx, "t/a");
    assert_int_equal(row.state, PS_PARKED);
    assert_int_equal(row.park_count, 3);
    assert_int_equal(row.next_attempt_ms, 123456);
    assert_int_equal(row.sent, 1);
    /* the prompt moves on: the old generation's news changes nothing */
    assert_int_equal(sp_replace_content(fx->st, "t/a", 300, "y", 1, 2, 301, PS_PENDING, 1, 1,
                                        &err), 0);
    row = get(fx, "t/a");
    assert_int_equal(row.sent, 0);
    assert_int_equal(row.park_count, 0);
    assert_int_equal(row.next_attempt_ms, 0);
    sp_set_state(fx->st, "t/a", 300, PS_FAILED, 9, 9);
    sp_mark_sent(fx->st, "t/a", 300);
    assert_int_equal(store_flush(fx->st), 0);
    row = get(fx, "t/a");
    assert_int_equal(row.state, PS_PENDING);
    assert_int_equal(row.sent, 0);
    sp_set_state(fx->st, "t/a", 301, PS_PENDING, 1, 777);
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(get(fx, "t/a").next_attempt_ms, 777);
}

static int listed_seen;

static int find_listed(const sp_entry *e, void *ud)
{
    (void)ud;
    if (strcmp(e->name, "listed") == 0)
        listed_seen = 1;
    return 0;
}

/* Queued writes: nobody waits for them, yet every read of their path sees them (the read
 * waits for the queue), their callbacks have run by then, and a stale generation is
 * refused (-ENOENT) without touching the row. */
static void test_queued_writes(void **state)
{
    fixture *fx = *state;
    rf_err err;
    prompt_row row;
    memset(&told, 0, sizeof told);
    prompt_attrs a = {.mode = 0644, .mtime_ns = 1};
    assert_int_equal(sp_begin_new(fx->st, "t/q", 30, &a, 5000, &row), 0);
    blob *b = blob_new("queued", 6);
    assert_non_null(b);
    assert_int_equal(sp_queue_content(fx->st, "t/q", 30, b, 31, PS_PENDING, 500, 6000,
                                      record_told), 0);
    blob_unref(b);   /* the op keeps its own reference */
    prompt_row got = get(fx, "t/q");
    assert_int_equal(got.gen, 31);
    assert_int_equal(got.size, 6);
    assert_int_equal(got.state, PS_PENDING);
    assert_int_equal(got.writing, 1);
    assert_int_equal(got.attrs.mtime_ns, 500);
    expect_blob(fx, "t/q", SP_DATA, 31, "queued");
    assert_int_equal(told.calls, 1);
    assert_int_equal(told.status, 0);
    assert_int_equal(told.gen, 31);
    assert_string_equal(told.data, "queued");
    /* the close, then a touch */
    assert_int_equal(sp_end_write_then(fx->st, "t/q", 31, 0, record_told), 0);
    assert_int_equal(sp_queue_touch(fx->st, "t/q", 777, NULL), 0);
    got = get(fx, "t/q");
    assert_int_equal(got.writing, 0);
    assert_int_equal(got.attrs.mtime_ns, 777);
    assert_int_equal(told.calls, 2);
    assert_int_equal(told.gen, 31);
    assert_string_equal(told.data, "-");
    /* bytes for a generation the row no longer has */
    b = blob_new("stale", 5);
    assert_non_null(b);
    assert_int_equal(sp_queue_content(fx->st, "t/q", 30, b, 32, PS_PENDING, 1, 1, record_told),
                     0);
    blob_unref(b);
    expect_blob(fx, "t/q", SP_DATA, 0, "queued");
    assert_int_equal(told.calls, 3);
    assert_int_equal(told.status, -ENOENT);
    assert_int_equal(get(fx, "t/q").gen, 31);
    /* a listing sees a name whose insert is still queued */
    assert_int_equal(sp_begin_new(fx->st, "t/listed", 40, &a, 5000, &row), 0);
    assert_int_equal(sp_list(fx->st, "t", 0, 100, find_listed, NULL, &err), 2);
    assert_int_equal(listed_seen, 1);
}

/* Wait (bounded) until the filter of prompt paths answers: a name never written is absent. */
static void wait_paths_ready(fixture *fx)
{
    int64_t until = tst_mono_ms() + 10000;
    while (!store_path_absent(fx->st, "never/written") && tst_mono_ms() < until)
        usleep(1000);
    assert_true(store_path_absent(fx->st, "never/written"));
}

/* The filter of paths (store_paths.c): after a remount every stored path (prompt or tag
 * directory) is a "maybe" (never absent), most names never written are absent, and every
 * write that gives a path a row (begin_new, begin_write, rename, install, mkdir) makes it
 * a "maybe" at once. */
static void test_paths_filter(void **state)
{
    fixture *fx = *state;
    char path[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof path, "t/stored-%d", i);
        install(fx, path, "x", 100 + i, PS_DONE);
    }
    rf_err err;
    assert_int_equal(sp_mkdir(fx->st, "t/olddir", &A644, &err), 0);
    store_close(fx->st);
    fx->st = tst_open(fx->dir);
    wait_paths_ready(fx);
    int absent = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof path, "t/stored-%d", i);
        assert_false(store_path_absent(fx->st, path));
        assert_int_equal(get(fx, path).gen, 100 + i);
        snprintf(path, sizeof path, "t/other-%d", i);
        absent += store_path_absent(fx->st, path);
    }
    assert_true(absent > 2900);   /* at most ~1% false "maybe" */
    dir_row dr;
    assert_false(store_path_absent(fx->st, "t/olddir"));
    assert_int_equal(sp_dir_get(fx->st, "t/olddir", &dr, &err), 0);
    assert_true(store_path_absent(fx->st, "t/newdir"));
    assert_int_equal(sp_dir_get(fx->st, "t/newdir", &dr, &err), -ENOENT);
    assert_int_equal(sp_mkdir(fx->st, "t/newdir", &A644, &err), 0);
    assert_false(store_path_absent(fx->st, "t/newdir"));
    assert_int_equal(sp_dir_get(fx->st, "t/newdir", &dr, &err), 0);
    prompt_row row;
    prompt_attrs a = {.mode = 0644, .mtime_ns = 1};
    expect_absent(fx, "t/new");
    assert_true(store_path_absent(fx->st, "t/new"));
    assert_int_equal(sp_begin_new(fx->st, "t/new", 9001, &a, 5000, &row), 0);
    assert_false(store_path_absent(fx->st, "t/new"));
    assert_int_equal(get(fx, "t/new").gen, 9001);
    assert_true(store_path_absent(fx->st, "t/written"));
    assert_int_equal(sp_begin_write(fx->st, "t/written", 9002, &a, 5000, &row, &err), 0);
    assert_false(store_path_absent(fx->st, "t/written"));
    assert_true(store_path_absent(fx->st, "t/moved"));
    assert_int_equal(sp_rename(fx->st, "t/stored-7", "t/moved", &err), 0);
    assert_int_equal(get(fx, "t/moved").gen, 107);
    assert_true(store_path_absent(fx->st, "t/installed"));
    install(fx, "t/installed", "y", 9003, PS_PENDING);
    assert_int_equal(get(fx, "t/installed").gen, 9003);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_begin_write_and_replace),
        T(test_begin_new),
        T(test_queued_writes),
        T(test_results),
        T(test_touch_and_setattr),
        T(test_delete),
        T(test_rename),
        T(test_install),
        T(test_mkdir_rmdir),
        T(test_list_paging),
        T(test_unfinished_and_count),
        T(test_state_by_generation),
        T(test_paths_filter),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
