/* test_config_keys.c — what a config refers to outside its text: config_load_file, API
 * keys (config_provider_key), key-file checks, key warnings, secrets for the redactor,
 * and the JSON Schema against examples/config.schema.json and the parser's field tables
 * (cmocka).
 *
 * The schema test reads examples/config.schema.json from $ROUTEFS_SOURCE_DIR, else from
 * the current directory (the test runner runs at the repository root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_test.h"

/* ---- files ---- */

static void test_load_file(void **state)
{
    (void)state;
    char *text = dq(MINIMAL);
    char *path = write_temp_file(text, strlen(text));
    free(text);
    rf_config *cfg = NULL;
    rf_err err;
    assert_int_equal(config_load_file(path, &cfg, &err), 0);
    assert_int_equal(cfg->tiers_len, 1);
    config_unref(cfg);
    unlink(path);
    free(path);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    rf_config *cfg = NULL;
    rf_err err;
    char expected[600];

    assert_int_equal(config_load_file("/nonexistent/routefs.json", &cfg, &err), -1);
    assert_null(cfg);
    assert_int_equal(err.code, ENOENT);
    assert_string_equal(err.msg, "cannot read /nonexistent/routefs.json: No such file or directory");

    char *path = write_temp_file("{\n  \"providers\": 1,\n  x", 23);
    assert_int_equal(config_load_file(path, &cfg, &err), -1);
    assert_int_equal(err.code, EINVAL);
    snprintf(expected, sizeof expected, "%s: line 3, column 4: invalid JSON", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);

    char *big = malloc(1024 * 1024 + 1);
    assert_non_null(big);
    memset(big, ' ', 1024 * 1024 + 1);
    path = write_temp_file(big, 1024 * 1024 + 1);
    assert_int_equal(config_load_file(path, &cfg, &err), -1);
    assert_int_equal(err.code, EINVAL);
    snprintf(expected, sizeof expected, "%s: config too large (more than 1048576 bytes)", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);

    /* exactly 1 MiB is allowed (and then blank) */
    path = write_temp_file(big, 1024 * 1024);
    assert_int_equal(config_load_file(path, &cfg, &err), -1);
    snprintf(expected, sizeof expected, "%s: config is empty", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);
    free(big);

    assert_int_equal(config_load_file("/", &cfg, &err), -1);
    assert_int_equal(err.code, EISDIR);
    assert_string_equal(err.msg, "cannot read /: Is a directory");
}

/* ---- API keys ---- */

static rf_provider key_provider(const char *env, const char *file)
{
    rf_provider p;
    memset(&p, 0, sizeof p);
    p.name = (char *)"openai";
    p.api_key_env = (char *)env;
    p.api_key_file = (char *)file;
    return p;
}

static void test_provider_key_env(void **state)
{
    (void)state;
    rf_provider p = key_provider("ROUTEFS_TEST_KEY", NULL);
    char *key = (char *)&key;
    rf_err err;

    unsetenv("ROUTEFS_TEST_KEY");
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_null(key);
    assert_string_equal(err.msg,
                        "provider \"openai\": environment variable ROUTEFS_TEST_KEY is not set");

    setenv("ROUTEFS_TEST_KEY", "", 1);
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_string_equal(err.msg,
                        "provider \"openai\": environment variable ROUTEFS_TEST_KEY is not set");

    setenv("ROUTEFS_TEST_KEY", "  sk-secret-1\n", 1);
    assert_int_equal(config_provider_key(&p, &key, &err), 0);
    assert_string_equal(key, "sk-secret-1");
    free(key);

    setenv("ROUTEFS_TEST_KEY", "sk-a\r\nX-Injected: 1", 1);
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_string_equal(err.msg, "provider \"openai\": API key contains control characters");
    assert_null(strstr(err.msg, "sk-a"));
    unsetenv("ROUTEFS_TEST_KEY");

    rf_provider none = key_provider(NULL, NULL);
    key = (char *)&key;
    assert_int_equal(config_provider_key(&none, &key, &err), 0);
    assert_null(key);
}

static void test_provider_key_file(void **state)
{
    (void)state;
    char *path = write_temp_file("\n sk-file-key \n\n", 16);
    rf_provider p = key_provider(NULL, path);
    char *key = NULL;
    rf_err err;
    char expected[600];

    assert_int_equal(config_provider_key(&p, &key, &err), 0);
    assert_string_equal(key, "sk-file-key");
    free(key);
    unlink(path);
    free(path);

    path = write_temp_file(" \n\t", 3);
    p = key_provider(NULL, path);
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_null(key);
    snprintf(expected, sizeof expected, "provider \"openai\": key file %s is empty", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);

    p = key_provider(NULL, "/nonexistent/key");
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_int_equal(err.code, ENOENT);
    assert_string_equal(err.msg, "provider \"openai\": cannot read key file /nonexistent/key: "
                                 "No such file or directory");
}

/* ---- key files ---- */

static rf_config *config_with_key_file(const char *path)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{'providers': {'or': {'base_url': 'https://openrouter.ai/api/v1',"
             " 'api_key_file': '%s'}}, " T_FAST "}", path);
    return parse_ok(text);
}

/* config_check_key_files on a config naming path: 0, or the message. */
static void expect_key_file(const char *path, const char *reason)
{
    rf_config *cfg = config_with_key_file(path);
    rf_err err;
    rf_err_clear(&err);
    int rc = config_check_key_files(cfg, &err);
    config_unref(cfg);
    if (!reason) {
        if (rc != 0)
            fail_msg("%s refused: %s", path, err.msg);
        return;
    }
    char expected[600];
    snprintf(expected, sizeof expected, "providers.or.api_key_file %s: %s", path, reason);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, EINVAL);
    assert_string_equal(err.msg, expected);
}

static char *key_file(const char *content, size_t len, mode_t mode)
{
    char *path = write_temp_file(content, len);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_key_files(void **state)
{
    (void)state;
    static const struct { const char *content; mode_t mode; const char *reason; } cases[] = {
        {"sk-or-v1-abc", 0600, NULL},
        {"sk-or-v1-abc\n", 0400, NULL},
        {"sk-or-v1-abc\r\n", 0600, NULL},
        {"  sk-or-v1-abc  \n", 0600, NULL},          /* trimmed when read */
        {"sk-or-v1-abc\n", 0644, "readable by group or others (chmod 600 it)"},
        {"sk-or-v1-abc\n", 0640, "readable by group or others (chmod 600 it)"},
        {"sk-or-v1-abc\n", 0604, "readable by group or others (chmod 600 it)"},
        {"sk-or-v1-abc\n", 0620, "writable or executable by group or others (chmod 600 it)"},
        {"sk-or-v1-abc\n", 0601, "writable or executable by group or others (chmod 600 it)"},
        {"sk-or-v1-abc\n\n", 0600, "more than one line"},
        {"sk-or-v1-abc\nsecond\n", 0600, "more than one line"},
        {"\nsk-or-v1-abc", 0600, "more than one line"},
        {"", 0600, "empty"},
        {"\n", 0600, "empty"},
        {" \t \n", 0600, "empty"},
        {"sk-\x01or", 0600, "contains control characters"},
        {"sk-or\rv1\n", 0600, "contains control characters"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = key_file(cases[i].content, strlen(cases[i].content), cases[i].mode);
        expect_key_file(path, cases[i].reason);
        unlink(path);
        free(path);
    }

    /* 4 KiB is the longest line, with or without its newline */
    char big[4100];
    memset(big, 'k', sizeof big);
    char *path = key_file(big, 4096, 0600);
    expect_key_file(path, NULL);
    unlink(path);
    free(path);
    big[4096] = '\n';
    path = key_file(big, 4097, 0600);
    expect_key_file(path, NULL);
    unlink(path);
    free(path);
    memset(big, 'k', sizeof big);
    path = key_file(big, 4097, 0600);
    expect_key_file(path, "longer than 4 KiB");
    unlink(path);
    free(path);
    path = key_file(big, sizeof big, 0600);
    expect_key_file(path, "longer than 4 KiB");
    unlink(path);
    free(path);

    expect_key_file("/nonexistent/key", "No such file or directory");
    expect_key_file("/tmp", "not a regular file");
    expect_key_file("/dev/null", "not a regular file");
    char fifo[] = "/tmp/test_config_fifo_XXXXXX";
    int fd = mkstemp(fifo);
    assert_true(fd >= 0);
    close(fd);
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_key_file(fifo, "not a regular file");     /* and does not block */
    unlink(fifo);

    /* not owned by the user running routefs */
    if (geteuid() == 0) {
        path = key_file("sk-or-v1-abc\n", 13, 0600);
        assert_int_equal(chown(path, 65534, 65534), 0);
        expect_key_file(path, "not owned by you");
        unlink(path);
        free(path);
    } else {
        expect_key_file("/etc/passwd", "not owned by you");   /* root's */
    }

    /* a config without key files, or with env keys, has nothing to check */
    rf_config *cfg = parse_ok(MINIMAL);
    rf_err err;
    assert_int_equal(config_check_key_files(cfg, &err), 0);
    config_unref(cfg);
}

/* config_load_file runs the key-file checks; its message names the config too. */
static void test_load_file_checks_key_files(void **state)
{
    (void)state;
    char *key = key_file("sk-or-v1-abc\n", 13, 0644);
    char text[1024];
    snprintf(text, sizeof text,
             "{\"providers\": {\"or\": {\"base_url\": \"https://openrouter.ai/api/v1\","
             " \"api_key_file\": \"%s\"}}, \"tiers\": {\"t\": {\"route\": \"m\"}}}", key);
    char *path = write_temp_file(text, strlen(text));
    rf_config *cfg = (rf_config *)&cfg;
    rf_err err;
    char expected[900];
    assert_int_equal(config_load_file(path, &cfg, &err), -1);
    assert_null(cfg);
    assert_int_equal(err.code, EINVAL);
    snprintf(expected, sizeof expected,
             "%s: providers.or.api_key_file %s: readable by group or others (chmod 600 it)",
             path, key);
    assert_string_equal(err.msg, expected);
    assert_null(strstr(err.msg, "sk-or"));

    assert_int_equal(chmod(key, 0600), 0);
    assert_int_equal(config_load_file(path, &cfg, &err), 0);
    assert_non_null(cfg);
    config_unref(cfg);
    unlink(path);
    free(path);
    unlink(key);
    free(key);
}

/* ---- key warnings and secrets ---- */

static void test_key_warnings(void **state)
{
    (void)state;
    setenv("ROUTEFS_TEST_KEY", "sk-test", 1);
    unsetenv("ROUTEFS_UNSET_KEY");
    setenv("ROUTEFS_BLANK_TOKEN", "  \n", 1);
    setenv("ROUTEFS_PLAIN", "x", 1);
    unsetenv("XDG_ROUTEFS_TEST");
    unsetenv("ROUTEFS_REDIS_PASS");
    rf_config *cfg = parse_ok(
        "{'providers': {"
        "   'good': {'base_url': 'http://a', 'api_key_env': 'ROUTEFS_TEST_KEY'},"
        "   'unset': {'base_url': 'http://a', 'api_key_env': 'ROUTEFS_UNSET_KEY'},"
        "   'blank': {'base_url': 'http://a', 'api_key_env': 'ROUTEFS_BLANK_TOKEN'},"
        "   'path': {'base_url': 'http://a', 'api_key_env': 'PATH'},"
        "   'home': {'base_url': 'http://a', 'api_key_env': 'HOME'},"
        "   'plain': {'base_url': 'http://a', 'api_key_env': 'ROUTEFS_PLAIN'},"
        "   'xdg': {'base_url': 'http://a', 'api_key_env': 'XDG_ROUTEFS_TEST'},"
        "   'lower': {'base_url': 'http://a', 'api_key_env': 'my_api_token'},"
        "   'none': {'base_url': 'http://a'}},"
        " 'shared': {'redis': 'redis://h', 'password_env': 'ROUTEFS_REDIS_PASS'},"
        " " T_FAST "}");
    unsetenv("my_api_token");
    char **w = (char **)&w;
    size_t n = config_key_warnings(cfg, &w);
    static const char *const expected[] = {
        "providers.unset.api_key_env: ROUTEFS_UNSET_KEY is not set: requests to unset will fail",
        "providers.blank.api_key_env: ROUTEFS_BLANK_TOKEN is not set: requests to blank will fail",
        "providers.path.api_key_env: PATH is not a secret variable: its value would be sent as "
        "the API key",
        "providers.home.api_key_env: HOME is not a secret variable: its value would be sent as "
        "the API key",
        "providers.plain.api_key_env: ROUTEFS_PLAIN does not look like a key variable (no KEY, "
        "TOKEN, SECRET, API, AUTH or PASS in its name)",
        "providers.xdg.api_key_env: XDG_ROUTEFS_TEST is not a secret variable: its value would "
        "be sent as the API key",
        "providers.xdg.api_key_env: XDG_ROUTEFS_TEST is not set: requests to xdg will fail",
        "providers.lower.api_key_env: my_api_token is not set: requests to lower will fail",
        "shared.password_env: ROUTEFS_REDIS_PASS is not set: Redis gets no password",
    };
    const size_t n_expected = sizeof expected / sizeof expected[0];
    for (size_t i = 0; i < n && i < n_expected; i++)
        assert_string_equal(w[i], expected[i]);
    assert_int_equal(n, n_expected);
    for (size_t i = 0; i < n; i++)
        assert_null(strstr(w[i], "sk-test"));
    config_free_strings(w, n);
    config_unref(cfg);

    cfg = parse_ok("{'providers': {'p': {'base_url': 'http://a', 'api_key_env': "
                   "'ROUTEFS_TEST_KEY'}}, " T_FAST "}");
    w = (char **)&w;
    assert_int_equal(config_key_warnings(cfg, &w), 0);
    assert_null(w);
    config_free_strings(NULL, 0);
    config_unref(cfg);
    unsetenv("ROUTEFS_TEST_KEY");
    unsetenv("ROUTEFS_BLANK_TOKEN");
    unsetenv("ROUTEFS_PLAIN");
}

static void test_secrets(void **state)
{
    (void)state;
    char *file = key_file(" sk-file-secret \n", 17, 0600);
    setenv("ROUTEFS_TEST_KEY", "sk-env-secret\n", 1);
    setenv("ROUTEFS_TEST_KEY2", "sk-env-secret", 1);       /* the same key twice: once */
    setenv("ROUTEFS_REDIS_PASS", "redis-pw-1", 1);
    unsetenv("ROUTEFS_UNSET_KEY");
    char text[1024];
    snprintf(text, sizeof text,
             "{'providers': {'a': {'base_url': 'http://a', 'api_key_env': 'ROUTEFS_TEST_KEY'},"
             " 'b': {'base_url': 'http://a', 'api_key_env': 'ROUTEFS_TEST_KEY2'},"
             " 'c': {'base_url': 'http://a', 'api_key_file': '%s'},"
             " 'd': {'base_url': 'http://a', 'api_key_env': 'ROUTEFS_UNSET_KEY'},"
             " 'e': {'base_url': 'http://a', 'api_key_file': '/nonexistent/k'},"
             " 'f': {'base_url': 'http://a'}},"
             " 'shared': {'redis': 'redis://h', 'password_env': 'ROUTEFS_REDIS_PASS'},"
             " " T_FAST "}", file);
    rf_config *cfg = parse_ok(text);
    char **secrets = NULL;
    size_t n = config_secrets(cfg, &secrets);
    assert_int_equal(n, 3);
    assert_string_equal(secrets[0], "sk-env-secret");
    assert_string_equal(secrets[1], "sk-file-secret");
    assert_string_equal(secrets[2], "redis-pw-1");
    config_free_secrets(secrets, n);
    config_free_secrets(NULL, 0);
    config_unref(cfg);

    cfg = parse_ok(MINIMAL);
    secrets = (char **)&secrets;
    assert_int_equal(config_secrets(cfg, &secrets), 0);
    assert_null(secrets);
    config_unref(cfg);
    unsetenv("ROUTEFS_TEST_KEY");
    unsetenv("ROUTEFS_TEST_KEY2");
    unsetenv("ROUTEFS_REDIS_PASS");
    unlink(file);
    free(file);
}

/* ---- the JSON Schema ---- */

/* The source tree: $ROUTEFS_SOURCE_DIR, else the current directory (the test runner runs
 * at the repository root, as test_fuzz_corpus does). */
static const char *source_dir(void)
{
    const char *dir = getenv("ROUTEFS_SOURCE_DIR");
    return dir && dir[0] ? dir : ".";
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = 2 * (len + 4096 + 1);
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void test_schema_matches_example(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/config.schema.json", source_dir());
    char *file = read_text(path);
    const char *schema = config_schema_json();
    if (strcmp(file, schema) != 0)
        fail_msg("%s differs from config_schema_json(): run `build/routefs schema > %s`", path,
                 path);
    free(file);

    cJSON *doc = cJSON_Parse(schema);
    assert_non_null(doc);
    const cJSON *dialect = cJSON_GetObjectItemCaseSensitive(doc, "$schema");
    assert_true(cJSON_IsString(dialect));
    assert_string_equal(dialect->valuestring, "https://json-schema.org/draft/2020-12/schema");
    cJSON_Delete(doc);
    assert_int_equal(schema[strlen(schema) - 1], '\n');
}

/* names in list that are not properties of obj, and properties of obj not in list */
static void compare_fields(const char *what, const cJSON *obj, const char *const *list)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(obj, "properties");
    if (!cJSON_IsObject(props))
        fail_msg("schema %s: no properties", what);
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(obj, "additionalProperties");
    if (!cJSON_IsFalse(extra))
        fail_msg("schema %s: additionalProperties is not false", what);
    size_t n = 0;
    for (; list[n]; n++)
        if (!cJSON_GetObjectItemCaseSensitive(props, list[n]))
            fail_msg("schema %s: the parser accepts \"%s\", the schema does not have it", what,
                     list[n]);
    const cJSON *p;
    cJSON_ArrayForEach(p, props) {
        size_t i = 0;
        while (list[i] && strcmp(list[i], p->string) != 0)
            i++;
        if (!list[i])
            fail_msg("schema %s: has \"%s\", the parser does not accept it", what, p->string);
    }
    assert_int_equal((size_t)cJSON_GetArraySize(props), n);
}

static void test_schema_fields_match_parser(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse(config_schema_json());
    assert_non_null(doc);
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(doc, "$defs");
    assert_non_null(defs);
    size_t tables = 0;
    for (const char *const *o = config_field_objects; *o; o++, tables++) {
        const cJSON *obj = (*o)[0] ? cJSON_GetObjectItemCaseSensitive(defs, *o) : doc;
        if (!obj)
            fail_msg("schema has no $defs/%s", *o);
        compare_fields((*o)[0] ? *o : "(top level)", obj, config_fields(*o));
    }
    assert_int_equal(tables, 7);
    /* every closed object of the schema is one the parser has a table for */
    const cJSON *def;
    cJSON_ArrayForEach(def, defs) {
        if (cJSON_GetObjectItemCaseSensitive(def, "properties") && !config_fields(def->string))
            fail_msg("schema $defs/%s has properties but the parser no field table", def->string);
    }
    assert_null(config_fields("nope"));
    assert_null(config_fields(NULL));
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_provider_key_env),
        cmocka_unit_test(test_provider_key_file),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_load_file_checks_key_files),
        cmocka_unit_test(test_key_warnings),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_schema_matches_example),
        cmocka_unit_test(test_schema_fields_match_parser),
    };
    return cmocka_run_group_tests_name("config_keys", tests, NULL, NULL);
}
