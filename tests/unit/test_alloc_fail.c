/* test_alloc_fail.c — allocation failures, injected one at a time (alloc_fail.h): every
 * allocation of a call fails in turn, and each run must either work or fail cleanly,
 * with an error value and nothing half-made (make test-asan also checks that nothing
 * leaks).  Covered: blob_new, strbuf, the JSON printers, a finished job's meta and
 * activity line, the commit of a finished job (its answer and bill stay with the job
 * when it cannot be built), the store's reads of a row with its bytes, and opening and
 * starting the store (with the filter of paths) (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "alloc_fail.h"
#include "blob.h"
#include "job.h"
#include "jobs_finish.h"
#include "jsonfmt.h"
#include "store_ledger.h"
#include "store_prompts.h"
#include "store_test.h"
#include "strbuf.h"

#define MAX_RUNS 100000   /* a bound on the loop, far above any call's allocations */

static void test_blob_new(void **state)
{
    (void)state;
    long n = 0;
    for (;; n++) {
        af_arm(n);
        blob *b = blob_new("bytes", 5);
        af_disarm();
        if (af_triggered()) {
            assert_null(b);
            continue;
        }
        assert_non_null(b);
        assert_int_equal(b->len, 5);
        assert_string_equal(b->data, "bytes");
        assert_true(b->hash == blob_hash("bytes", 5));   /* blob_new_hashed's, computed once */
        blob_unref(b);
        break;
    }
    assert_true(n >= 1);   /* it did allocate, and that allocation was made to fail */
}

/* strbuf: appends and a printf that outgrows the buffer twice (past the first 256 bytes,
 * then past what one doubling gives); a failed allocation anywhere gives NULL, never a
 * cut text. */
static void test_strbuf(void **state)
{
    (void)state;
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char want[3200];
    snprintf(want, sizeof want, "head;%d:%s;tail", 42, big);
    long n = 0;
    for (; n < MAX_RUNS; n++) {
        strbuf b = {0};
        af_arm(n);
        sb_put(&b, "head;");
        sb_printf(&b, "%d:%s", 42, big);
        sb_putn(&b, ";tail!", 5);
        size_t len = 0;
        char *text = sb_take(&b, &len);
        af_disarm();
        assert_null(b.data);   /* taken: the buffer is empty again */
        if (af_triggered()) {
            assert_null(text);
            continue;
        }
        assert_string_equal(text, want);
        assert_int_equal(len, strlen(want));
        free(text);
        break;
    }
    assert_true(n >= 2);   /* the first allocation and a growth were made to fail */
    strbuf empty = {0};
    char *none = sb_take(&empty, NULL);
    assert_string_equal(none, "");   /* nothing appended: an empty text, not NULL */
    free(none);
}

static cJSON *sample_doc(void)
{
    cJSON *doc = cJSON_Parse("{\"file\": \"a \\\"quoted\\\" name\\n\", \"n\": 3, \"cost\": 0.00012,"
                             " \"short\": [1, 2, \"x\"], \"none\": null, \"ok\": true,"
                             " \"hops\": [{\"provider\": \"p\", \"status\": 200}, {}], \"e\": {}}");
    assert_non_null(doc);
    return doc;
}

static void test_json_printers(void **state)
{
    (void)state;
    cJSON *doc = sample_doc();
    char *want_pretty = json_print_line(doc, 1), *want_line = json_print_line(doc, 0);
    assert_non_null(want_pretty);
    assert_non_null(want_line);
    for (int pretty = 0; pretty <= 1; pretty++) {
        long n = 0;
        for (; n < MAX_RUNS; n++) {
            af_arm(n);
            char *text = json_print_line(doc, pretty);
            af_disarm();
            if (!af_triggered()) {
                assert_string_equal(text, pretty ? want_pretty : want_line);
                free(text);
                break;
            }
            if (text)   /* a failure it got around (cJSON retries small buffers) */
                assert_string_equal(text, pretty ? want_pretty : want_line);
            free(text);
        }
        assert_true(n > 0 && n < MAX_RUNS);
    }
    free(want_pretty);
    free(want_line);
    cJSON_Delete(doc);
}

/* A finished job as jobs_finish_build hands it to meta.c. */
static void fill_job(job *j, job_hop *hop)
{
    memset(j, 0, sizeof *j);
    j->key = "t/tag/brief.txt";
    j->tier_name = "t";
    j->tag = "tag";
    j->name = "brief.txt";
    j->state = JOB_DONE;
    j->gen = 7;
    *hop = (job_hop){.provider = "sim", .model = "sim/a", .status = 200, .latency_ms = 12,
                     .attempt = 1, .at_ms = 1700000000000, .tokens = 3,
                     .detail = "{\"provider_name\":\"x\"}"};
    j->hops = hop;
    j->nhops = j->caphops = 1;
    j->served_provider = "sim";
    j->served_model = "sim/a";
    j->or_metadata = "{\"strategy\":\"price\"}";
    j->prompt_tokens = 5;
    j->completion_tokens = 3;
    j->has_cost = 1;
    j->cost_nusd = 1234;
    j->created_ms = 1700000000000;
    j->started_ms = 1700000000001;
    j->finished_ms = 1700000000100;
}

static void test_meta_and_activity(void **state)
{
    (void)state;
    job j;
    job_hop hop;
    fill_job(&j, &hop);
    char *want_meta = NULL, *want_line = NULL;
    assert_int_equal(job_meta_and_activity(&j, &want_meta, &want_line), 0);
    long n = 0;
    for (; n < MAX_RUNS; n++) {
        char *meta = (char *)1, *line = (char *)1;
        af_arm(n);
        int r = job_meta_and_activity(&j, &meta, &line);
        af_disarm();
        if (r < 0) {
            assert_true(af_triggered());
            assert_null(meta);   /* both or neither */
            assert_null(line);
            continue;
        }
        assert_int_equal(r, 0);
        /* a failed allocation cJSON got around may still give the full text */
        assert_string_equal(meta, want_meta);
        assert_string_equal(line, want_line);
        free(meta);
        free(line);
        if (!af_triggered())
            break;
    }
    assert_true(n > 10 && n < MAX_RUNS);   /* a tree of dozens of nodes: many failed */
    free(want_meta);
    free(want_line);
}

/* A bill as the runner hands it over: every string the job's own (freed with the commit). */
static ledger_row sample_bill(void)
{
    return (ledger_row){.ref = strdup("t/brief.txt#7#1"), .at_ms = 1700000000100,
                        .path = strdup("t/tag/brief.txt"), .tier = strdup("t"),
                        .provider = strdup("sim"), .model = strdup("sim/a"), .has_cost = 1,
                        .cost_nusd = 1234, .prompt_tokens = 5, .completion_tokens = 3};
}

/* jobs_finish_build with each allocation failing in turn: out of memory leaves the job as
 * it was, its answer (or error) and its bill still in it for the retry, so a paid answer
 * never becomes a commit with an empty .out or without its bill; once it works, both have
 * moved into the commit. */
static void finish_build_under_failures(const char *error)
{
    static const char answer[] = "the answer";
    job j;
    job_hop hop;
    long n = 0;
    for (; n < MAX_RUNS; n++) {
        fill_job(&j, &hop);
        j.state = JOB_COMMITTING;
        j.error = error ? strdup(error) : NULL;
        char *content = error ? NULL : strdup(answer);
        j.content = content;
        j.content_len = content ? strlen(answer) : 0;
        j.billed = 1;
        j.bill = sample_bill();
        af_arm(n);
        job_commit *c = jobs_finish_build(&j);
        af_disarm();
        if (!c) {
            assert_true(af_triggered());
            assert_ptr_equal(j.content, content);   /* the answer is still the job's */
            assert_int_equal(j.content_len, content ? strlen(answer) : 0);
            assert_int_equal(j.billed, 1);          /* and so is its bill */
            assert_string_equal(j.bill.ref, "t/brief.txt#7#1");
            assert_int_equal(j.state, JOB_COMMITTING);
            ledger_row_clear(&j.bill);
            free(content);
            free(j.error);
            continue;
        }
        assert_int_equal(c->state, error ? PS_FAILED : PS_DONE);
        assert_non_null(c->meta);
        assert_non_null(c->activity);
        assert_non_null(c->event);
        if (error) {
            assert_string_equal(c->err, "it failed\n");
        } else {
            assert_int_equal(c->out_len, strlen(answer));
            assert_memory_equal(c->out, answer, strlen(answer));
            assert_null(j.content);
        }
        assert_int_equal(c->nledger, 1);
        assert_int_equal(c->ledger[0].cost_nusd, 1234);
        assert_int_equal(j.billed, 0);
        assert_int_equal(c->nattempts, 1);
        assert_string_equal(c->attempts[0].provider, "sim");
        job_commit_free(c);
        free(j.error);
        if (!af_triggered())
            break;
    }
    assert_true(n > 5 && n < MAX_RUNS);   /* path, meta, line, event, attempts, ledger */
}

static void test_finish_build(void **state)
{
    (void)state;
    finish_build_under_failures(NULL);
    finish_build_under_failures("it failed");
}

/* A fresh store in dir (a buffer of 64) holding the prompt path with bytes, generation gen. */
static store *store_with_prompt(char *dir, const char *path, const char *bytes, int64_t gen)
{
    tst_tempdir(dir, 64, "allocfail");
    store *st = tst_open(dir);
    static const prompt_attrs a = {.mode = 0644, .mtime_ns = 1};
    rf_err err;
    if (sp_install(st, path, bytes, strlen(bytes), 1, gen, PS_PENDING, &a, 1, &err) != 0)
        fail_msg("sp_install %s: %s", path, err.msg);
    return st;
}

static void test_store_reads(void **state)
{
    (void)state;
    char dir[64];
    store *st = store_with_prompt(dir, "t/p", "prompt bytes", 5);
    rf_err err;
    long n = 0;
    for (; n < MAX_RUNS; n++) {
        prompt_row row;
        char *data = (char *)1;
        size_t len = 99;
        af_arm(n);
        int r = sp_get_with(st, "t/p", SP_DATA, &row, &data, &len, &err);
        af_disarm();
        if (!af_triggered()) {
            assert_int_equal(r, 0);
            assert_int_equal(row.gen, 5);
            assert_int_equal(len, 12);
            assert_memory_equal(data, "prompt bytes", 12);
            free(data);
            break;
        }
        assert_true(r < 0);
        assert_null(data);
        assert_int_equal(len, 0);
    }
    assert_true(n >= 1 && n < MAX_RUNS);
    store_close(st);
    tst_rmrf(dir);
}

/* store_open and store_start (with the filter of paths) under every failure: an error,
 * or a store that reads rightly, filter or not. */
static void test_store_open_start(void **state)
{
    (void)state;
    char dir[64];
    store_close(store_with_prompt(dir, "t/kept", "x", 9));
    rf_err err;
    store *st;
    long n = 0;
    for (; n < MAX_RUNS; n++) {
        af_arm(n);
        st = store_open(dir, &err);
        int started = st && store_start(st, &err) == 0;
        af_disarm();
        int hit = af_triggered();
        if (st && started) {
            prompt_row row;
            assert_int_equal(sp_get(st, "t/kept", &row, &err), 0);
            assert_int_equal(row.gen, 9);
            assert_int_equal(sp_get(st, "t/never", &row, &err), -ENOENT);
        } else {
            assert_true(hit);
        }
        store_close(st);
        if (!hit)
            break;
    }
    assert_true(n >= 1 && n < MAX_RUNS);
    tst_rmrf(dir);
}

int main(void)
{
    af_hook_cjson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_new),
        cmocka_unit_test(test_strbuf),
        cmocka_unit_test(test_json_printers),
        cmocka_unit_test(test_meta_and_activity),
        cmocka_unit_test(test_finish_build),
        cmocka_unit_test(test_store_reads),
        cmocka_unit_test(test_store_open_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
