/* openai_test.h — what the openai.c test files share (test_openai.c: requests,
 * parameters, responses; test_openai_error.c: error bodies): JSON written with ` for "
 * (bq), exact-size copies so that a read past a body's end shows under ASan and
 * valgrind, and string assertions. */
#ifndef RF_OPENAI_TEST_H
#define RF_OPENAI_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

/* Table rows name the fields they test and leave the later ones zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define COUNT(a) (sizeof (a) / sizeof (a)[0])

/* ---- helpers ---- */

/* A malloc'd copy of s with every ` turned into ", or NULL for NULL. */
static inline char *bq(const char *s)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    assert_non_null(copy);
    for (char *p = copy; *p; p++)
        if (*p == '`')
            *p = '"';
    return copy;
}

/* A malloc'd copy of s[0..len) with nothing after it (at least 1 byte allocated). */
static inline char *exact_copy(const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    return copy;
}

static inline void assert_string_or_null(const char *actual, const char *expected)
{
    if (expected)
        assert_string_equal(actual, expected);
    else
        assert_null(actual);
}

#endif
