/* breakers_test.h — helpers shared by the breaker unit tests (test_breakers*.c): results
 * of each kind, providers.json snapshots on an injected clock.
 * Include after <cmocka.h>; every function is static, each test binary has its copy. */
#ifndef RF_BREAKERS_TEST_H
#define RF_BREAKERS_TEST_H

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "breakers.h"
#include "router.h"

#define T0 5000000LL               /* the injected monotonic clock starts here */
#define WALL0 1700000000000LL      /* and the wall clock reads this at T0 */

/* A result with the given scope facts; settings 0 = breakers_new's defaults. */
#define UNUSED __attribute__((unused))

UNUSED static breaker_result result(int transport, long status)
{
    breaker_result r = {
        .scope = breakers_scope_of(transport, status, 0), .transport = transport,
        .http_status = status, .retry_after_ms = -1, .latency_ms = 10, .error = NULL,
    };
    if (r.scope != BREAKER_SCOPE_NONE)
        r.error = status ? "HTTP error" : "transport error";
    return r;
}

UNUSED static void record(rf_breakers *b, const char *p, const char *m, int transport,
                          long status, int64_t now)
{
    breaker_result r = result(transport, status);
    breakers_record(b, p, m, &r, now);
}

/* n failures of model m on p (503s) */
UNUSED static void fail_model(rf_breakers *b, const char *p, const char *m, int n, int64_t now)
{
    for (int i = 0; i < n; i++)
        record(b, p, m, RF_TE_NONE, 503, now);
}

/* n failures of the whole provider p (refused connections) */
UNUSED static void fail_provider(rf_breakers *b, const char *p, const char *m, int n,
                                 int64_t now)
{
    for (int i = 0; i < n; i++)
        record(b, p, m, RF_TE_CONNECT, 0, now);
}

UNUSED static void succeed(rf_breakers *b, const char *p, const char *m, int64_t now)
{
    record(b, p, m, RF_TE_NONE, 200, now);
}

UNUSED static int json_int(cJSON *obj, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    assert_non_null(v);
    assert_true(cJSON_IsNumber(v));
    return v->valueint;
}

UNUSED static const char *json_str(cJSON *obj, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    assert_non_null(v);
    if (cJSON_IsNull(v))
        return NULL;
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* The JSON object of a provider (model NULL) or of one of its models. */
UNUSED static cJSON *breaker_obj(cJSON *root, const char *provider, const char *model)
{
    cJSON *p = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "providers"), provider);
    if (!p || !model)
        return p;
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "models"), model);
}

/* providers.json at monotonic now, with the wall clock WALL0 at T0. */
UNUSED static cJSON *snapshot(rf_breakers *b, int64_t now)
{
    char *text = breakers_to_json(b, now, WALL0 + (now - T0));
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    return root;
}

#endif
