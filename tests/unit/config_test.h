/* config_test.h — helpers shared by the config unit tests (test_config*.c).
 *
 * JSON in the tests is written with ' for " (dq() converts) so it stays readable.
 * Include after <cmocka.h>; every function is static, each test binary has its copy. */
#ifndef RF_CONFIG_TEST_H
#define RF_CONFIG_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define P_OR   "'providers': {'or': {'base_url': 'https://openrouter.ai/api/v1'}}"
#define T_FAST "'tiers': {'fast': {'route': 'm'}}"
#define MINIMAL "{" P_OR ", " T_FAST "}"
#define SESSION_64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SESSION_256 SESSION_64 SESSION_64 SESSION_64 SESSION_64
#define SESSION_257 SESSION_256 "a"

/* A malloc'd copy of s with every ' turned into ". */
__attribute__((unused)) static char *dq(const char *s)
{
    char *copy = strdup(s);
    assert_non_null(copy);
    for (char *p = copy; *p; p++)
        if (*p == '\'')
            *p = '"';
    return copy;
}

/* Parse s (with ' for "), failing the test with the message when it does not parse. */
__attribute__((unused)) static rf_config *parse_ok(const char *s)
{
    char *text = dq(s);
    rf_config *cfg = NULL;
    rf_err err;
    rf_err_clear(&err);
    int rc = config_parse(text, strlen(text), &cfg, &err);
    free(text);
    if (rc != 0)
        fail_msg("config did not parse: %s", err.msg);
    assert_non_null(cfg);
    return cfg;
}

/* Parse s and expect failure with EINVAL and exactly `message`. */
__attribute__((unused)) static void expect_parse_error(const char *s, const char *message)
{
    char *text = dq(s);
    size_t len = strlen(text);
    /* an exact-size copy: config_parse must not read past len */
    char *exact = malloc(len ? len : 1);
    assert_non_null(exact);
    memcpy(exact, text, len);
    free(text);
    rf_config *cfg = (rf_config *)&cfg;
    rf_err err;
    rf_err_clear(&err);
    int rc = config_parse(exact, len, &cfg, &err);
    free(exact);
    assert_int_equal(rc, -1);
    assert_null(cfg);
    assert_int_equal(err.code, EINVAL);
    assert_string_equal(err.msg, message);
}

__attribute__((unused)) static char *write_temp_file(const char *content, size_t len)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}


#endif
