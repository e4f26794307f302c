/* test_fuzz_corpus.c — the fuzz corpora and crash reproducers as regression tests (cmocka).
 *
 * Includes the libFuzzer targets (tests/fuzz/fuzz_config.c, fuzz_openai.c, fuzz_stream.c,
 * fuzz_shared.c, fuzz_openrouter.c) with their entry points renamed, and runs every file of
 *   tests/fuzz/corpus/config      through the config target,
 *   tests/fuzz/corpus/openai      through the openai target,
 *   tests/fuzz/corpus/stream      through the stream target,
 *   tests/fuzz/corpus/shared      through the shared (Redis replies) target,
 *   tests/fuzz/corpus/openrouter  through the openrouter target,
 *   tests/fuzz/crashes            through the target its name starts with ("config-",
 *                                 "openai-", "stream-", "shared-" or "openrouter-";
 *                                 anything else through all five),
 * one cmocka test per directory.  A target aborts on a broken invariant; ASan (make
 * test-asan) and valgrind see memory errors and leaks.  Each input is copied into an
 * exact-size buffer, as libFuzzer passes it, so a read past its end is caught too.
 *
 * The directory is tests/fuzz relative to the repository root (where the test runner
 * runs), or $ROUTEFS_FUZZ_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LLVMFuzzerTestOneInput fuzz_config_one
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fuzz_openai_one
#include "../fuzz/fuzz_openai.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fuzz_stream_one
#include "../fuzz/fuzz_stream.c"
#undef LLVMFuzzerTestOneInput

#undef FS_CHECK   /* fuzz_stream.c's and fuzz_shared.c's checks share a name */
#define LLVMFuzzerTestOneInput fuzz_shared_one
#include "../fuzz/fuzz_shared.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fuzz_openrouter_one
#include "../fuzz/fuzz_openrouter.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fuzz_target)(const uint8_t *data, size_t size);

static const char *fuzz_dir(void)
{
    const char *dir = getenv("ROUTEFS_FUZZ_DIR");
    return dir && dir[0] ? dir : "tests/fuzz";
}

/* The whole file in an exact-size malloc'd buffer (1 byte allocated for an empty file). */
static uint8_t *read_input(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) < 0)
        fail_msg("cannot stat %s: %s", path, strerror(errno));
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    if (n && fread(buf, 1, n, f) != n)
        fail_msg("cannot read %s", path);
    fclose(f);
    *len = n;
    return buf;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file of fuzz_dir()/sub through `target` (NULL: chosen by the file
 * name's prefix).  Returns the number of files run. */
static size_t run_dir(const char *sub, fuzz_target target)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", fuzz_dir(), sub);
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s: %s (run from the repository root or set ROUTEFS_FUZZ_DIR)",
                 dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
            assert_non_null(names);
        }
        names[n] = strdup(e->d_name);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);   /* the same order every run */

    size_t ran = 0;
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len;
            uint8_t *data = read_input(path, &len);
            if (target) {
                target(data, len);
            } else if (starts_with(names[i], "config-")) {
                fuzz_config_one(data, len);
            } else if (starts_with(names[i], "openai-")) {
                fuzz_openai_one(data, len);
            } else if (starts_with(names[i], "stream-")) {
                fuzz_stream_one(data, len);
            } else if (starts_with(names[i], "shared-")) {
                fuzz_shared_one(data, len);
            } else if (starts_with(names[i], "openrouter-")) {
                fuzz_openrouter_one(data, len);
            } else {
                fuzz_config_one(data, len);
                fuzz_openai_one(data, len);
                fuzz_stream_one(data, len);
                fuzz_shared_one(data, len);
                fuzz_openrouter_one(data, len);
            }
            free(data);
            ran++;
        }
        free(names[i]);
    }
    free(names);
    print_message("%zu file(s) from %s\n", ran, dir);
    return ran;
}

static void test_corpus_config(void **state)
{
    (void)state;
    assert_true(run_dir("corpus/config", fuzz_config_one) > 0);
}

static void test_corpus_openai(void **state)
{
    (void)state;
    assert_true(run_dir("corpus/openai", fuzz_openai_one) > 0);
}

static void test_corpus_stream(void **state)
{
    (void)state;
    assert_true(run_dir("corpus/stream", fuzz_stream_one) > 0);
}

static void test_corpus_shared(void **state)
{
    (void)state;
    assert_true(run_dir("corpus/shared", fuzz_shared_one) > 0);
}

static void test_corpus_openrouter(void **state)
{
    (void)state;
    assert_true(run_dir("corpus/openrouter", fuzz_openrouter_one) > 0);
}

static void test_crash_reproducers(void **state)
{
    (void)state;
    assert_true(run_dir("crashes", NULL) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_config),
        cmocka_unit_test(test_corpus_openai),
        cmocka_unit_test(test_corpus_stream),
        cmocka_unit_test(test_corpus_shared),
        cmocka_unit_test(test_corpus_openrouter),
        cmocka_unit_test(test_crash_reproducers),
    };
    return cmocka_run_group_tests_name("fuzz_corpus", tests, NULL, NULL);
}
