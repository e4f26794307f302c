/* test_log.c — the daemon log (src/log.c): the line format, the journald format when
 * JOURNAL_STREAM names stderr (and only then), levels, one line per event, a relative
 * path kept absolute, and a reopen after the file was moved away (logrotate). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char dir[PATH_MAX];

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/var/tmp/routefs-unit-log.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    assert_int_equal(rf_log_open(NULL), 0);   /* frees the kept path */
    unsetenv("JOURNAL_STREAM");
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* The whole file; caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static int matches(const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
    int r = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return r;
}

static void file_format_levels_and_one_line(void **state)
{
    (void)state;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/a.log", dir);
    assert_int_equal(rf_log_open(path), 0);
    assert_int_equal(rf_log_is_journal(), 0);
    rf_log_set_level(RF_LOG_INFO);
    LOG_DEBUG("not shown");
    LOG_INFO("hello %d", 42);
    LOG_WARN("two\nlines\rhere");
    LOG_ERROR("bad");
    char *text = slurp(path);
    assert_null(strstr(text, "not shown"));
    assert_true(matches(text, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                              "info: hello 42$"));
    assert_true(matches(text, "Z warn: two lines here$"));
    assert_true(matches(text, "Z error: bad$"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(text);
}

/* stderr pointed at a file for the duration; returns the saved stderr. */
static int stderr_to(const char *path)
{
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
    return saved;
}

static void stderr_back(int saved)
{
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
}

static void journal_format_when_stderr_is_the_journal(void **state)
{
    (void)state;
    char path[PATH_MAX + 16], js[64];
    snprintf(path, sizeof path, "%s/journal", dir);
    int saved = stderr_to(path);
    struct stat st;
    assert_int_equal(fstat(2, &st), 0);
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    assert_int_equal(rf_log_open(NULL), 0);
    int journal = rf_log_is_journal();
    rf_log_set_level(RF_LOG_DEBUG);
    LOG_DEBUG("d");
    LOG_INFO("i");
    LOG_WARN("w");
    LOG_ERROR("e");
    stderr_back(saved);
    assert_int_equal(journal, 1);
    char *text = slurp(path);
    assert_string_equal(text, "<7>d\n<6>i\n<4>w\n<3>e\n");
    free(text);
    rf_log_set_level(RF_LOG_INFO);
}

static void journal_stream_of_another_file_keeps_timestamps(void **state)
{
    (void)state;
    static const char *values[] = {"1:2", "garbage", ":", "12:", "99999999999:1x", ""};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/stderr-%zu", dir, i);
        int saved = stderr_to(path);
        setenv("JOURNAL_STREAM", values[i], 1);
        assert_int_equal(rf_log_open(NULL), 0);
        int journal = rf_log_is_journal();
        LOG_INFO("x");
        stderr_back(saved);
        assert_int_equal(journal, 0);
        char *text = slurp(path);
        assert_true(matches(text, "^[0-9-]+T[0-9:.]+Z info: x$"));
        free(text);
    }
    /* a log file is never the journal, whatever JOURNAL_STREAM says */
    char path[PATH_MAX + 16], js[64];
    snprintf(path, sizeof path, "%s/file.log", dir);
    assert_int_equal(rf_log_open(path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    assert_int_equal(rf_log_is_journal(), 0);
    unsetenv("JOURNAL_STREAM");
}

static void reopen_after_logrotate_moved_the_file(void **state)
{
    (void)state;
    char cwd[PATH_MAX], moved[PATH_MAX + 16], path[PATH_MAX + 16];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(rf_log_open("rel.log"), 0);   /* relative: kept as dir/rel.log */
    assert_int_equal(chdir("/"), 0);                /* as the daemon does */
    LOG_INFO("before");
    snprintf(path, sizeof path, "%s/rel.log", dir);
    snprintf(moved, sizeof moved, "%s/rel.log.1", dir);
    assert_int_equal(rename(path, moved), 0);
    LOG_INFO("still the old file");
    assert_int_equal(rf_log_reopen(), 0);
    LOG_INFO("after");
    assert_int_equal(chdir(cwd), 0);
    char *old = slurp(moved), *now = slurp(path);
    assert_non_null(strstr(old, "before"));
    assert_non_null(strstr(old, "still the old file"));
    assert_null(strstr(old, "after"));
    assert_non_null(strstr(now, "after"));
    assert_null(strstr(now, "before"));
    free(old);
    free(now);
    /* a log on stderr has nothing to reopen */
    assert_int_equal(rf_log_open(NULL), 0);
    assert_int_equal(rf_log_reopen(), 0);
}

static void open_failure_keeps_the_previous_log(void **state)
{
    (void)state;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/keep.log", dir);
    assert_int_equal(rf_log_open(path), 0);
    assert_int_equal(rf_log_open("/nonexistent-dir/x.log"), -1);
    LOG_INFO("kept");
    char *text = slurp(path);
    assert_non_null(strstr(text, "kept"));
    free(text);
    /* the directory of the log is gone: reopen fails, the old descriptor stays */
    char sub[PATH_MAX + 16], cmd[PATH_MAX * 3];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/sub/x.log", dir);
    assert_int_equal(rf_log_open(path), 0);
    snprintf(cmd, sizeof cmd, "mv '%s' '%s.gone'", sub, sub);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rf_log_reopen(), -1);
    LOG_INFO("to the moved file");
    snprintf(path, sizeof path, "%s/sub.gone/x.log", dir);
    text = slurp(path);
    assert_non_null(strstr(text, "to the moved file"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_format_levels_and_one_line),
        cmocka_unit_test(journal_format_when_stderr_is_the_journal),
        cmocka_unit_test(journal_stream_of_another_file_keeps_timestamps),
        cmocka_unit_test(reopen_after_logrotate_moved_the_file),
        cmocka_unit_test(open_failure_keeps_the_previous_log),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
