/* test_router.c — router.c: the classification table, backoff, Retry-After parsing,
 * and hop choice (breakers as it sees them).  Configs are built by hand so this needs no
 * config.c.  The breakers' own tests are in test_breakers.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "router.h"

/* ---- classify ---- */

#define MAX_RA 30000L

typedef struct {
    const char *what;
    rf_attempt a;
    rf_outcome want;
} classify_case;

/* transport, status, parse_status, context_length, unsupported_param, retry_after_ms,
 * content_policy */
#define T(te)                  { te, 0, 0, 0, 0, -1, 0 }
#define S(st)                  { RF_TE_NONE, st, 0, 0, 0, -1, 0 }
#define P(st, ps)              { RF_TE_NONE, st, ps, 0, 0, -1, 0 }
#define RA(st, ra)             { RF_TE_NONE, st, 0, 0, 0, ra, 0 }
#define E(st, ctx, unsup)      { RF_TE_NONE, st, 0, ctx, unsup, -1, 0 }
#define CP(st)                 { RF_TE_NONE, st, 0, 0, 0, -1, 1 }

static const classify_case classify_cases[] = {
    /* transport */
    { "connect refused",          T(RF_TE_CONNECT),   RF_OUT_RETRY },
    { "timeout",                  T(RF_TE_TIMEOUT),   RF_OUT_RETRY },
    { "truncated",                T(RF_TE_TRUNCATED), RF_OUT_RETRY },
    { "other transport",          T(RF_TE_OTHER),     RF_OUT_RETRY },
    { "body too large",           T(RF_TE_TOO_LARGE), RF_OUT_NEXT_HOP },
    /* 2xx */
    { "200 ok",                   S(200),             RF_OUT_SUCCESS },
    { "201 ok",                   S(201),             RF_OUT_SUCCESS },
    { "200 not json",             P(200, 1),          RF_OUT_NEXT_HOP },
    { "200 error object",         P(200, 2),          RF_OUT_NEXT_HOP },
    { "200 no choices",           P(200, 3),          RF_OUT_NEXT_HOP },
    { "200 finish error",         P(200, 4),          RF_OUT_NEXT_HOP },
    { "200 empty content",        P(200, 5),          RF_OUT_NEXT_HOP },
    /* content policy: another model will not help */
    { "400 content policy",       CP(400),            RF_OUT_FAIL_JOB },
    { "403 content policy",       CP(403),            RF_OUT_FAIL_JOB },
    { "503 never content policy", CP(503),            RF_OUT_RETRY },
    /* 5xx and 408 */
    { "408",                      S(408),             RF_OUT_RETRY },
    { "500",                      S(500),             RF_OUT_RETRY },
    { "502",                      S(502),             RF_OUT_RETRY },
    { "504",                      S(504),             RF_OUT_RETRY },
    { "520",                      S(520),             RF_OUT_RETRY },
    { "599",                      S(599),             RF_OUT_RETRY },
    /* 429 / 503 and Retry-After */
    { "429 no retry-after",       S(429),             RF_OUT_RETRY },
    { "429 retry-after 0",        RA(429, 0),         RF_OUT_RETRY },
    { "429 retry-after under",    RA(429, 3000),      RF_OUT_RETRY },
    { "429 retry-after at cap",   RA(429, MAX_RA),    RF_OUT_RETRY },
    { "429 retry-after over",     RA(429, MAX_RA + 1), RF_OUT_NEXT_HOP },
    { "429 retry-after huge",     RA(429, LONG_MAX),  RF_OUT_NEXT_HOP },
    { "503 no retry-after",       S(503),             RF_OUT_RETRY },
    { "503 retry-after under",    RA(503, 1000),      RF_OUT_RETRY },
    { "503 retry-after over",     RA(503, 60000),     RF_OUT_NEXT_HOP },
    /* request errors */
    { "400 plain",                S(400),             RF_OUT_FAIL_JOB },
    { "400 context length",       E(400, 1, 0),       RF_OUT_NEXT_HOP },
    { "400 unsupported param",    E(400, 0, 1),       RF_OUT_NEXT_HOP },
    { "413 plain",                S(413),             RF_OUT_FAIL_JOB },
    { "413 context length",       E(413, 1, 0),       RF_OUT_NEXT_HOP },
    { "422 plain",                S(422),             RF_OUT_FAIL_JOB },
    { "422 unsupported param",    E(422, 0, 1),       RF_OUT_NEXT_HOP },
    /* auth, billing, forbidden, not found */
    { "401",                      S(401),             RF_OUT_NEXT_HOP_DOWN },
    { "402",                      S(402),             RF_OUT_NEXT_HOP_DOWN },
    { "403",                      S(403),             RF_OUT_NEXT_HOP_DOWN },
    { "404",                      S(404),             RF_OUT_NEXT_HOP_DOWN },
    /* other 4xx: the request's fault */
    { "405",                      S(405),             RF_OUT_FAIL_JOB },
    { "409",                      S(409),             RF_OUT_FAIL_JOB },
    { "410",                      S(410),             RF_OUT_FAIL_JOB },
    { "415",                      S(415),             RF_OUT_FAIL_JOB },
    { "451",                      S(451),             RF_OUT_FAIL_JOB },
    { "499",                      S(499),             RF_OUT_FAIL_JOB },
    { "404 flags ignored",        E(404, 1, 1),       RF_OUT_NEXT_HOP_DOWN },
    { "405 flags ignored",        E(405, 1, 1),       RF_OUT_FAIL_JOB },
    /* anything else */
    { "100",                      S(100),             RF_OUT_NEXT_HOP },
    { "301",                      S(301),             RF_OUT_NEXT_HOP },
    { "302",                      S(302),             RF_OUT_NEXT_HOP },
    { "304",                      S(304),             RF_OUT_NEXT_HOP },
    { "0 without transport error", S(0),              RF_OUT_NEXT_HOP },
    { "600",                      S(600),             RF_OUT_NEXT_HOP },
};

static void test_classify_table(void **state)
{
    for (size_t i = 0; i < sizeof classify_cases / sizeof classify_cases[0]; i++) {
        const classify_case *c = &classify_cases[i];
        rf_outcome got = router_classify(&c->a, MAX_RA);
        if (got != c->want)
            fail_msg("%s: got %s, want %s", c->what, router_outcome_name(got),
                     router_outcome_name(c->want));
    }
}

static void test_classify_respects_cap_argument(void **state)
{
    rf_attempt a = RA(429, 5000);
    assert_int_equal(router_classify(&a, 5000), RF_OUT_RETRY);
    assert_int_equal(router_classify(&a, 4999), RF_OUT_NEXT_HOP);
    a.retry_after_ms = -1;  /* no header: normal backoff whatever the cap */
    assert_int_equal(router_classify(&a, 0), RF_OUT_RETRY);
}

static void test_outcome_names(void **state)
{
    assert_string_equal(router_outcome_name(RF_OUT_SUCCESS), "success");
    assert_string_equal(router_outcome_name(RF_OUT_RETRY), "retry");
    assert_string_equal(router_outcome_name(RF_OUT_NEXT_HOP), "next-hop");
    assert_string_equal(router_outcome_name(RF_OUT_NEXT_HOP_DOWN), "next-hop-down");
    assert_string_equal(router_outcome_name(RF_OUT_FAIL_JOB), "fail-job");
}

/* ---- backoff ---- */

static long ceiling_of(int attempt, long base, long cap)
{
    long c = base;
    for (int i = 0; i < attempt && c < cap; i++)
        c *= 2;
    return c < cap ? c : cap;
}

static void test_backoff_bounds(void **state)
{
    const int attempts[] = { 0, 1, 2, 3, 4, 5, 6, 10, 31, 32, 63, 64, 1000, INT_MAX };
    for (unsigned s = 1; s <= 300; s++) {
        unsigned seed = s;
        for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
            long d = router_backoff_ms(attempts[i], 250, 8000, -1, &seed);
            long ceiling = attempts[i] > 10 ? 8000 : ceiling_of(attempts[i], 250, 8000);
            assert_true(d >= 0);
            assert_true(d <= ceiling);
        }
    }
    /* huge base/cap: no overflow */
    unsigned seed = 7;
    for (int i = 0; i < 100; i++) {
        long d = router_backoff_ms(i, LONG_MAX / 3, LONG_MAX, -1, &seed);
        assert_true(d >= 0);
    }
    /* negative attempt behaves as attempt 0 */
    for (int i = 0; i < 100; i++)
        assert_true(router_backoff_ms(-5, 100, 8000, -1, &seed) <= 100);
}

static void test_backoff_inclusive_range(void **state)
{
    /* [0, 3]: every value turns up, nothing outside */
    int seen[4] = { 0 };
    unsigned seed = 42;
    for (int i = 0; i < 2000; i++) {
        long d = router_backoff_ms(0, 3, 100, -1, &seed);
        assert_true(d >= 0 && d <= 3);
        seen[d]++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(seen[i] > 300);
}

static void test_backoff_uniform(void **state)
{
    /* attempt 10 is capped: uniform on [0, 8000]; mean ~4000, quartiles ~25% each */
    unsigned seed = 12345;
    const int n = 10000;
    double sum = 0;
    int quart[4] = { 0 };
    for (int i = 0; i < n; i++) {
        long d = router_backoff_ms(10, 250, 8000, -1, &seed);
        sum += (double)d;
        quart[d * 4 / 8001]++;
    }
    double mean = sum / n;
    assert_true(mean > 4000 * 0.9 && mean < 4000 * 1.1);
    for (int q = 0; q < 4; q++)
        assert_true(quart[q] > n / 4 * 0.85 && quart[q] < n / 4 * 1.15);

    /* uncapped attempt 2: uniform on [0, 1000] */
    sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)router_backoff_ms(2, 250, 8000, -1, &seed);
    mean = sum / n;
    assert_true(mean > 500 * 0.9 && mean < 500 * 1.1);
}

static void test_backoff_seed_determinism(void **state)
{
    unsigned a = 99, b = 99;
    for (int i = 0; i < 50; i++)
        assert_int_equal(router_backoff_ms(3, 250, 8000, -1, &a),
                         router_backoff_ms(3, 250, 8000, -1, &b));
}

static void test_backoff_retry_after_overrides(void **state)
{
    unsigned seed = 1;
    assert_int_equal(router_backoff_ms(0, 250, 8000, 3000, &seed), 3000);
    assert_int_equal(router_backoff_ms(5, 250, 8000, 0, &seed), 0);
    assert_int_equal(router_backoff_ms(5, 250, 8000, 20000, &seed), 20000);  /* above cap */
    assert_int_equal(router_backoff_ms(0, 0, 8000, -1, &seed), 0);
}

/* ---- Retry-After ---- */

static int64_t unix_of(int y, int mon, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };
    return (int64_t)timegm(&tm);
}

static void test_retry_after_seconds(void **state)
{
    int64_t now = 1700000000;
    assert_int_equal(router_parse_retry_after("120", now), 120000);
    assert_int_equal(router_parse_retry_after("0", now), 0);
    assert_int_equal(router_parse_retry_after("3", now), 3000);
    assert_int_equal(router_parse_retry_after(" 7\r\n", now), 7000);
    assert_int_equal(router_parse_retry_after("007", now), 7000);
}

static void test_retry_after_dates(void **state)
{
    int64_t now = unix_of(2015, 10, 21, 7, 27, 0);
    assert_int_equal(router_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), 60000);
    assert_int_equal(router_parse_retry_after(" Wed, 21 Oct 2015 07:27:30 GMT\r\n", now), 30000);
    assert_int_equal(router_parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now), 60000);
    assert_int_equal(router_parse_retry_after("Wed Oct 21 07:29:00 2015", now), 120000);
    /* the past and now: go now */
    assert_int_equal(router_parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), 0);
    assert_int_equal(router_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 0);
}

static void test_retry_after_garbage(void **state)
{
    const char *bad[] = {
        "", "   ", "abc", "-5", "1.5", "12abc", "12 34", "+3", "0x10",
        "Wed, 21 Oct 2015 07:28:00",            /* no zone */
        "Wed, 21 Oct 2015 07:28:00 GMT junk",
        "Wed, 99 Oct 2015 07:28:00 GMT",
        "tomorrow",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (router_parse_retry_after(bad[i], 1700000000) != -1)
            fail_msg("\"%s\" parsed as %ld", bad[i], router_parse_retry_after(bad[i], 1700000000));
    assert_int_equal(router_parse_retry_after(NULL, 0), -1);
}

static void test_retry_after_huge_saturates(void **state)
{
    long sat = (long)INT32_MAX * 1000;
    assert_int_equal(router_parse_retry_after("2147483647", 0), sat);
    assert_int_equal(router_parse_retry_after("2147483648", 0), sat);
    assert_int_equal(router_parse_retry_after("99999999999999999999999999999999", 0), sat);
    long far = router_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 1700000000);
    assert_true(far > 0 && far <= sat);
    /* the caller can add it to a timestamp */
    assert_true((int64_t)1700000000000LL + sat > 0);
}

/* ---- breakers, as hop choice sees them (their own tests are in test_breakers.c) ---- */

#define T0 1700000000000LL   /* a monotonic time */

/* n failures on provider p: of model m (a 500) when m is set, else of the whole provider
 * (a refused connection).  With a threshold of 1 each opens its breaker. */
static void fail_n(rf_breakers *b, const char *p, const char *m, int n, int64_t now)
{
    breaker_result r = {.scope = m ? BREAKER_SCOPE_MODEL : BREAKER_SCOPE_PROVIDER,
                        .transport = m ? RF_TE_NONE : RF_TE_CONNECT, .http_status = m ? 500 : 0,
                        .retry_after_ms = -1, .latency_ms = 10, .error = "failed"};
    for (int i = 0; i < n; i++)
        breakers_record(b, p, m, &r, now);
}

/* ---- hop choice ---- */

static char *supported_a[] = { "max_tokens", "temperature" };

typedef struct {
    rf_provider providers[3];
    rf_hop route[3];
    rf_config cfg;
    rf_tier tier;
} fixture;

static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->providers[0].name = "a";
    f->providers[0].supported_params = supported_a;
    f->providers[0].supported_params_len = 2;
    f->providers[1].name = "b";   /* no list: supports everything */
    f->providers[2].name = "c";
    f->route[0] = (rf_hop){ "a", "m/one" };
    f->route[1] = (rf_hop){ "b", "m/two:free" };
    f->route[2] = (rf_hop){ "c", "m/three" };
    f->cfg.providers = f->providers;
    f->cfg.providers_len = 3;
    f->tier.name = "t";
    f->tier.route = f->route;
    f->tier.route_len = 3;
    f->tier.allow_fallbacks = 1;
    f->tier.require_parameters = 0;
}

static void test_hop_supports(void **state)
{
    fixture f;
    fixture_init(&f);
    char *ok[] = { "max_tokens", "temperature", "model", "messages" };
    char *tools[] = { "max_tokens", "tools" };
    assert_true(router_hop_supports(&f.cfg, &f.route[0], ok, 4));
    assert_true(router_hop_supports(&f.cfg, &f.route[0], NULL, 0));
    assert_false(router_hop_supports(&f.cfg, &f.route[0], tools, 2));
    assert_true(router_hop_supports(&f.cfg, &f.route[1], tools, 2));
    rf_hop unknown = { "nobody", "x" };
    assert_false(router_hop_supports(&f.cfg, &unknown, NULL, 0));
}

static void test_next_hop_basic(void **state)
{
    fixture f;
    fixture_init(&f);
    rf_breakers *b = breakers_new(1, 1000);
    long wait = -1;
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0, &wait), 0);
    assert_int_equal(wait, 0);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 1, NULL, 0, T0, &wait), 1);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 2, NULL, 0, T0, &wait), 2);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 3, NULL, 0, T0, &wait), -1);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 99, NULL, 0, T0, &wait), -1);
    assert_int_equal(router_next_hop(NULL, &f.cfg, &f.tier, 0, NULL, 0, T0, NULL), 0);
    breakers_free(b);
}

static void test_next_hop_skips_open(void **state)
{
    fixture f;
    fixture_init(&f);
    rf_breakers *b = breakers_new(1, 1000);
    long wait = -1;
    fail_n(b, "a", "m/one", 1, T0);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0, &wait), 1);
    assert_int_equal(wait, 0);
    /* a model-level breaker counts too */
    fail_n(b, "b", "m/two:free", 1, T0);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0, &wait), 2);
    assert_int_equal(wait, 0);
    /* all open: the earliest to reopen, and how long to wait */
    fail_n(b, "c", NULL, 1, T0 - 500);   /* c reopens at T0 + 500: first */
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0, &wait), 2);
    assert_int_equal(wait, 500);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0 + 200, &wait), 2);
    assert_int_equal(wait, 300);
    /* once the cooldowns pass, the first hop again */
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0 + 1000, &wait), 0);
    assert_int_equal(wait, 0);
    breakers_free(b);
}

static void test_next_hop_does_not_take_probe(void **state)
{
    fixture f;
    fixture_init(&f);
    rf_breakers *b = breakers_new(1, 1000);
    long wait;
    fail_n(b, "a", "m/one", 1, T0);
    int64_t t = T0 + 1000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, t, &wait), 0);
    assert_true(breakers_allow(b, "a", "m/one", t));   /* the probe slot was still free */
    /* with the probe out, hop 0 is not ready; hop 1 is */
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, t, &wait), 1);
    breakers_free(b);
}

static void test_next_hop_no_fallbacks(void **state)
{
    fixture f;
    fixture_init(&f);
    f.tier.allow_fallbacks = 0;
    rf_breakers *b = breakers_new(1, 1000);
    long wait = -1;
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0, &wait), 0);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 1, NULL, 0, T0, &wait), -1);
    /* the first hop open: still the first hop, after a wait; never the second */
    fail_n(b, "a", "m/one", 1, T0);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, NULL, 0, T0 + 100, &wait), 0);
    assert_int_equal(wait, 900);
    /* and when the first hop cannot take the request at all: nothing */
    f.tier.require_parameters = 1;
    char *tools[] = { "max_tokens", "tools" };
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, tools, 2, T0, &wait), -1);
    breakers_free(b);
}

static void test_next_hop_require_parameters(void **state)
{
    fixture f;
    fixture_init(&f);
    rf_breakers *b = breakers_new(1, 1000);
    long wait;
    char *tools[] = { "max_tokens", "tools" };
    char *plain[] = { "max_tokens", "temperature" };
    /* not required: the first hop whatever it supports */
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, tools, 2, T0, &wait), 0);
    f.tier.require_parameters = 1;
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, tools, 2, T0, &wait), 1);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, plain, 2, T0, &wait), 0);
    /* an unsupported hop is not a candidate even when everything else is open */
    fail_n(b, "b", NULL, 1, T0);
    fail_n(b, "c", NULL, 1, T0 + 100);
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, tools, 2, T0 + 10, &wait), 1);
    assert_int_equal(wait, 990);
    /* nothing supports it */
    char *exotic[] = { "logit_bias" };
    f.providers[1].supported_params = supported_a;
    f.providers[1].supported_params_len = 2;
    f.providers[2].supported_params = supported_a;
    f.providers[2].supported_params_len = 2;
    assert_int_equal(router_next_hop(b, &f.cfg, &f.tier, 0, exotic, 1, T0, &wait), -1);
    breakers_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_classify_respects_cap_argument),
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_inclusive_range),
        cmocka_unit_test(test_backoff_uniform),
        cmocka_unit_test(test_backoff_seed_determinism),
        cmocka_unit_test(test_backoff_retry_after_overrides),
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_dates),
        cmocka_unit_test(test_retry_after_garbage),
        cmocka_unit_test(test_retry_after_huge_saturates),
        cmocka_unit_test(test_hop_supports),
        cmocka_unit_test(test_next_hop_basic),
        cmocka_unit_test(test_next_hop_skips_open),
        cmocka_unit_test(test_next_hop_does_not_take_probe),
        cmocka_unit_test(test_next_hop_no_fallbacks),
        cmocka_unit_test(test_next_hop_require_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
