/* alloc_fail.h — allocation-failure injection for unit tests: the n-th allocation made by
 * the armed thread fails, every other one works.
 *
 * A test binary that includes this is linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup
 * (see the Makefile), so every such call in librfs.a and in the test comes here first;
 * cJSON is pointed at the same allocator with af_hook_cjson().  Allocations inside other
 * libraries (SQLite, libcurl) are not counted.  Only the thread that armed the counter
 * is counted, so the store's own threads do not move it.
 *
 * The usual loop: for n = 0, 1, ...: af_arm(n); run the code; af_disarm(); check that it
 * either worked or failed cleanly (an error value, nothing half-done, nothing leaked:
 * make test-asan checks leaks); stop after the first n whose run never reached a failure
 * (af_triggered() is 0). */
#ifndef RF_ALLOC_FAIL_H
#define RF_ALLOC_FAIL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static _Thread_local long af_countdown = -1;   /* -1: disarmed */
static _Thread_local int af_hit;

/* 1 when this allocation must fail (the armed thread's n-th). */
static int af_fail_now(void)
{
    if (af_countdown < 0)
        return 0;
    if (af_countdown-- == 0) {
        af_hit = 1;
        return 1;
    }
    return 0;
}

__attribute__((unused)) static void af_arm(long n)
{
    af_hit = 0;
    af_countdown = n;
}

__attribute__((unused)) static void af_disarm(void)
{
    af_countdown = -1;
}

/* Whether the run since af_arm reached the failing allocation. */
__attribute__((unused)) static int af_triggered(void)
{
    return af_hit;
}

void *__wrap_malloc(size_t n)
{
    return af_fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return af_fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return af_fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = __wrap_malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

char *__wrap_strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *d = __wrap_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* cJSON allocates through its hooks: make them the failing allocator too. */
__attribute__((unused)) static void af_hook_cjson(void)
{
    cJSON_Hooks hooks = {.malloc_fn = __wrap_malloc, .free_fn = free};
    cJSON_InitHooks(&hooks);
}

#endif
