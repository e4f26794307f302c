/* test_breakers.c — breakers.c: the scope of each failure, model-level vs provider-wide
 * breakers, per-provider settings, Retry-After cooldowns, every transition, the probe
 * lease, the growth of a failed probe's cooldown, and failoverbench's S15 "flapping
 * primary" played through router.c on an injected monotonic clock.  The listener, the log,
 * the remote view and providers.json are in test_breakers_report.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "breakers_test.h"
#include "log.h"

/* ---- scope ---- */

static void test_scope_of(void **state)
{
    static const struct { int te; long status; int parse_failed; breaker_scope want; } cases[] = {
        { RF_TE_NONE,        200, 0, BREAKER_SCOPE_NONE },
        { RF_TE_NONE,        201, 0, BREAKER_SCOPE_NONE },
        { RF_TE_NONE,        200, 1, BREAKER_SCOPE_MODEL },     /* empty or broken answer */
        { RF_TE_CONNECT,       0, 0, BREAKER_SCOPE_PROVIDER },  /* refused, DNS */
        { RF_TE_RESET,         0, 0, BREAKER_SCOPE_PROVIDER },
        { RF_TE_TLS,           0, 0, BREAKER_SCOPE_PROVIDER },
        { RF_TE_TIMEOUT,       0, 0, BREAKER_SCOPE_MODEL },     /* timeouts of every kind */
        { RF_TE_FIRST_TOKEN,   0, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_STALL,         0, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_TRUNCATED,     0, 0, BREAKER_SCOPE_MODEL },     /* a malformed stream */
        { RF_TE_ABORTED,       0, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_TOO_LARGE,     0, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_OTHER,         0, 0, BREAKER_SCOPE_MODEL },
        { 99,                  0, 0, BREAKER_SCOPE_MODEL },     /* unknown: not provider-wide */
        { RF_TE_NONE,        401, 0, BREAKER_SCOPE_PROVIDER },
        { RF_TE_NONE,        402, 0, BREAKER_SCOPE_PROVIDER },
        { RF_TE_NONE,        403, 0, BREAKER_SCOPE_PROVIDER },
        { RF_TE_NONE,        404, 0, BREAKER_SCOPE_MODEL },     /* no such model */
        { RF_TE_NONE,        408, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_NONE,        429, 0, BREAKER_SCOPE_MODEL },     /* overload */
        { RF_TE_NONE,        503, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_NONE,        500, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_NONE,        502, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_NONE,        599, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_NONE,        400, 0, BREAKER_SCOPE_NONE },      /* the request's fault */
        { RF_TE_NONE,        413, 0, BREAKER_SCOPE_NONE },
        { RF_TE_NONE,        422, 0, BREAKER_SCOPE_NONE },
        { RF_TE_NONE,        418, 0, BREAKER_SCOPE_NONE },
        { RF_TE_NONE,        302, 0, BREAKER_SCOPE_MODEL },
        { RF_TE_NONE,        100, 0, BREAKER_SCOPE_MODEL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        breaker_scope got = breakers_scope_of(cases[i].te, cases[i].status, cases[i].parse_failed);
        if (got != cases[i].want)
            fail_msg("case %zu (te %d, HTTP %ld): scope %d, want %d", i, cases[i].te,
                     cases[i].status, got, cases[i].want);
    }
}

/* ---- scopes: model-level vs provider-wide ---- */

/* The common set-up: OpenRouter as the only provider.  Five 503s on model A open A's
 * breaker only: model B on the same provider is still admitted. */
static void test_model_outage_leaves_other_models(void **state)
{
    rf_breakers *b = breakers_new(0, 0);   /* defaults: 5, 30000 */
    assert_non_null(b);
    fail_model(b, "or", "a/model-a", 4, T0);
    assert_true(breakers_allow(b, "or", "a/model-a", T0));
    breakers_release(b, "or", "a/model-a", T0);
    fail_model(b, "or", "a/model-a", 1, T0);
    assert_false(breakers_allow(b, "or", "a/model-a", T0));
    assert_int_equal(breakers_ready_at(b, "or", "a/model-a", T0), T0 + 30000);
    assert_true(breakers_allow(b, "or", "b/model-b", T0));
    assert_int_equal(breakers_ready_at(b, "or", "b/model-b", T0), 0);
    assert_true(breakers_allow(b, "or", NULL, T0));
    assert_false(breakers_allow(b, "or", "a/model-a", T0 + 29999));

    cJSON *root = snapshot(b, T0 + 10);
    cJSON *p = breaker_obj(root, "or", NULL);
    assert_string_equal(json_str(p, "state"), "ok");
    assert_string_equal(json_str(p, "breaker"), "closed");
    assert_int_equal(json_int(p, "consecutive_failures"), 0);
    assert_int_equal(json_int(p, "failures"), 5);        /* statistics count every attempt */
    cJSON *a = breaker_obj(root, "or", "a/model-a");
    assert_string_equal(json_str(a, "state"), "cooling down");
    assert_string_equal(json_str(a, "breaker"), "open");
    assert_int_equal(json_int(a, "consecutive_failures"), 5);
    assert_int_equal(json_int(a, "opened"), 1);
    cJSON_Delete(root);
    breakers_free(b);
}

/* Failures that cannot be model-specific open the provider-wide breaker: every model on
 * it is refused. */
static void test_provider_wide_failures(void **state)
{
    static const struct { int te; long status; int at_once; } cases[] = {
        { RF_TE_CONNECT, 0, 0 }, { RF_TE_RESET, 0, 0 }, { RF_TE_TLS, 0, 0 },
        { RF_TE_NONE, 401, 1 }, { RF_TE_NONE, 402, 1 }, { RF_TE_NONE, 403, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rf_breakers *b = breakers_new(3, 1000);
        int n = cases[i].at_once ? 1 : 3;
        for (int k = 0; k < n; k++) {
            assert_true(breakers_allow(b, "p", "m1", T0));
            record(b, "p", "m1", cases[i].te, cases[i].status, T0);
        }
        assert_false(breakers_allow(b, "p", "m1", T0));
        assert_false(breakers_allow(b, "p", "m2", T0));   /* another model: refused too */
        assert_false(breakers_allow(b, "p", NULL, T0));
        assert_true(breakers_allow(b, "q", "m1", T0));    /* another provider: fine */
        assert_int_equal(breakers_ready_at(b, "p", "m2", T0), T0 + 1000);
        cJSON *root = snapshot(b, T0);
        cJSON *p = breaker_obj(root, "p", NULL);
        assert_string_equal(json_str(p, "breaker"), "open");
        assert_string_equal(json_str(p, "state"), cases[i].at_once ? "down" : "cooling down");
        assert_string_equal(json_str(breaker_obj(root, "p", "m1"), "breaker"), "closed");
        assert_int_equal(json_int(breaker_obj(root, "p", "m1"), "consecutive_failures"), 0);
        cJSON_Delete(root);
        breakers_free(b);
    }
}

/* A 404 for the model marks that model down at once; the provider stays up. */
static void test_model_404_down_at_once(void **state)
{
    rf_breakers *b = breakers_new(5, 1000);
    record(b, "p", "gone/model", RF_TE_NONE, 404, T0);
    assert_false(breakers_allow(b, "p", "gone/model", T0));
    assert_true(breakers_allow(b, "p", "other/model", T0));
    cJSON *root = snapshot(b, T0);
    assert_string_equal(json_str(breaker_obj(root, "p", "gone/model"), "state"), "down");
    assert_string_equal(json_str(breaker_obj(root, "p", NULL), "state"), "ok");
    cJSON_Delete(root);
    /* after the cooldown the probe's success brings it back */
    assert_true(breakers_allow(b, "p", "gone/model", T0 + 1000));
    succeed(b, "p", "gone/model", T0 + 1001);
    root = snapshot(b, T0 + 1001);
    assert_string_equal(json_str(breaker_obj(root, "p", "gone/model"), "state"), "ok");
    cJSON_Delete(root);
    breakers_free(b);
}

/* A request the provider rightly refused (400) is nothing against either breaker. */
static void test_request_errors_count_against_nobody(void **state)
{
    rf_breakers *b = breakers_new(2, 1000);
    for (int i = 0; i < 10; i++)
        record(b, "p", "m", RF_TE_NONE, 400, T0);
    assert_true(breakers_allow(b, "p", "m", T0));
    fail_model(b, "p", "m", 1, T0);
    record(b, "p", "m", RF_TE_NONE, 422, T0);   /* counts as the model answering: resets */
    fail_model(b, "p", "m", 1, T0);
    assert_true(breakers_allow(b, "p", "m", T0));
    breakers_free(b);
}

/* A model failure with an HTTP answer shows the provider reachable: its half-open probe
 * closes it.  One without an answer (a timeout) says nothing: the slot is given back. */
static void test_model_failure_and_the_provider(void **state)
{
    rf_breakers *b = breakers_new(1, 1000);
    fail_provider(b, "p", "m", 1, T0);
    int64_t t = T0 + 1000;
    assert_true(breakers_allow(b, "p", "m", t));          /* the provider's probe */
    record(b, "p", "m", RF_TE_TIMEOUT, 0, t);           /* model-level, no answer */
    cJSON *root = snapshot(b, t);
    assert_string_equal(json_str(breaker_obj(root, "p", NULL), "breaker"), "half-open");
    assert_string_equal(json_str(breaker_obj(root, "p", NULL), "state"), "half-open");
    assert_string_equal(json_str(breaker_obj(root, "p", "m"), "breaker"), "open");
    cJSON_Delete(root);
    assert_true(breakers_allow(b, "p", "m2", t));         /* slot given back: probe again */
    record(b, "p", "m2", RF_TE_NONE, 503, t);           /* an answer: the provider is up */
    assert_true(breakers_allow(b, "p", "m3", t));
    assert_true(breakers_allow(b, "p", "m3", t));         /* closed: no single-probe limit */
    assert_false(breakers_allow(b, "p", "m", t));         /* m's own breaker still open */
    assert_false(breakers_allow(b, "p", "m2", t));        /* and m2's (threshold 1) */
    breakers_free(b);
}

/* A provider-wide failure during a model's probe gives the model's slot back. */
static void test_provider_failure_releases_model_probe(void **state)
{
    rf_breakers *b = breakers_new(1, 1000);
    fail_model(b, "p", "m", 1, T0);
    int64_t t = T0 + 1000;
    assert_true(breakers_allow(b, "p", "m", t));
    assert_false(breakers_allow(b, "p", "m", t));         /* probe out */
    record(b, "p", "m", RF_TE_RESET, 0, t);             /* the provider failed (opens it) */
    assert_false(breakers_allow(b, "p", "m", t));
    int64_t t2 = t + 1000;                               /* the provider half-open too */
    assert_true(breakers_allow(b, "p", "m", t2));         /* one probe for both */
    assert_false(breakers_allow(b, "p", "m", t2));
    succeed(b, "p", "m", t2);
    assert_true(breakers_allow(b, "p", "m", t2));
    assert_true(breakers_allow(b, "p", "m", t2));
    breakers_free(b);
}

static void test_both_must_allow(void **state)
{
    rf_breakers *b = breakers_new(1, 1000);
    fail_model(b, "p", "m", 1, T0);                      /* model open until +1000 */
    fail_provider(b, "p", NULL, 1, T0 + 500);            /* provider until +1500 */
    int64_t t = T0 + 1200;  /* model half-open, provider still open */
    assert_false(breakers_allow(b, "p", "m", t));
    assert_int_equal(breakers_ready_at(b, "p", "m", t), T0 + 1500);
    /* the refusal must not have used up the model's probe slot */
    t = T0 + 1500;
    assert_true(breakers_allow(b, "p", "m", t));   /* one probe for both */
    assert_false(breakers_allow(b, "p", "m", t));
    assert_false(breakers_allow(b, "p", "x", t));  /* provider probe out */
    succeed(b, "p", "m", t);
    assert_true(breakers_allow(b, "p", "m", t));
    assert_true(breakers_allow(b, "p", "x", t));
    breakers_free(b);
}

/* ---- thresholds and cooldowns per provider ---- */

static void record_with(rf_breakers *b, const char *p, const char *m, long status,
                        long retry_after_ms, int threshold, long cooldown_ms, int64_t now)
{
    breaker_result r = result(RF_TE_NONE, status);
    r.retry_after_ms = retry_after_ms;
    r.failure_threshold = threshold;
    r.cooldown_ms = cooldown_ms;
    breakers_record(b, p, m, &r, now);
}

static void test_per_provider_settings(void **state)
{
    rf_breakers *b = breakers_new(5, 30000);
    for (int i = 0; i < 2; i++)
        record_with(b, "x", "m", 500, -1, 2, 2000, T0);
    for (int i = 0; i < 3; i++)
        record_with(b, "y", "m", 500, -1, 4, 7000, T0);
    for (int i = 0; i < 4; i++)
        record_with(b, "z", "m", 500, -1, 0, 0, T0);      /* defaults: 5, 30000 */
    assert_false(breakers_allow(b, "x", "m", T0));         /* 2 of 2 */
    assert_int_equal(breakers_ready_at(b, "x", "m", T0), T0 + 2000);
    assert_true(breakers_allow(b, "y", "m", T0));          /* 3 of 4 */
    breakers_release(b, "y", "m", T0);
    record_with(b, "y", "m", 500, -1, 4, 7000, T0);
    assert_false(breakers_allow(b, "y", "m", T0));
    assert_int_equal(breakers_ready_at(b, "y", "m", T0), T0 + 7000);
    assert_true(breakers_allow(b, "z", "m", T0));          /* 4 of 5 */
    record_with(b, "z", "m", 500, -1, 0, 0, T0);
    assert_int_equal(breakers_ready_at(b, "z", "m", T0), T0 + 30000);

    /* a live edit applies to the next failure: w has 3 failures at threshold 10, then the
     * threshold becomes 2 (and the cooldown 500) */
    for (int i = 0; i < 3; i++)
        record_with(b, "w", "m", 500, -1, 10, 9000, T0);
    assert_true(breakers_allow(b, "w", "m", T0));
    record_with(b, "w", "m", 500, -1, 2, 500, T0);
    assert_false(breakers_allow(b, "w", "m", T0));
    assert_int_equal(breakers_ready_at(b, "w", "m", T0), T0 + 500);
    cJSON *root = snapshot(b, T0);
    assert_int_equal(json_int(breaker_obj(root, "w", "m"), "cooldown_ms"), 500);
    assert_int_equal(json_int(breaker_obj(root, "x", "m"), "cooldown_ms"), 2000);
    assert_int_equal(json_int(breaker_obj(root, "y", NULL), "cooldown_ms"), 7000);
    cJSON_Delete(root);
    breakers_free(b);
}

/* A Retry-After on 429/503 sets the cooldown, at most 10x the provider's. */
static void test_retry_after_cooldown(void **state)
{
    rf_breakers *b = breakers_new(1, 1000);
    record_with(b, "p", "ra5", 429, 5000, 1, 1000, T0);
    assert_int_equal(breakers_ready_at(b, "p", "ra5", T0), T0 + 5000);
    record_with(b, "p", "ra-short", 503, 200, 1, 1000, T0);   /* shorter than the base: used */
    assert_int_equal(breakers_ready_at(b, "p", "ra-short", T0), T0 + 200);
    record_with(b, "p", "ra-huge", 503, 3600000, 1, 1000, T0);
    assert_int_equal(breakers_ready_at(b, "p", "ra-huge", T0), T0 + 10000);
    record_with(b, "p", "ra-zero", 429, 0, 1, 1000, T0);      /* "now": half-open at once */
    assert_int_equal(breakers_ready_at(b, "p", "ra-zero", T0), 0);
    assert_true(breakers_allow(b, "p", "ra-zero", T0));
    assert_false(breakers_allow(b, "p", "ra-zero", T0));      /* but one probe at a time */
    record_with(b, "p", "ra-500", 500, 5000, 1, 1000, T0);    /* only 429/503 carry it */
    assert_int_equal(breakers_ready_at(b, "p", "ra-500", T0), T0 + 1000);
    record_with(b, "p", "none", 429, -1, 1, 1000, T0);
    assert_int_equal(breakers_ready_at(b, "p", "none", T0), T0 + 1000);
    /* a failed probe's Retry-After wins over the growth too */
    int64_t t = T0 + 5000;
    assert_true(breakers_allow(b, "p", "ra5", t));
    record_with(b, "p", "ra5", 503, 8000, 1, 1000, t);
    assert_int_equal(breakers_ready_at(b, "p", "ra5", t), t + 8000);
    cJSON *root = snapshot(b, t);
    assert_int_equal(json_int(breaker_obj(root, "p", "ra5"), "cooldown_ms"), 8000);
    cJSON_Delete(root);
    breakers_free(b);
}

/* ---- transitions ---- */

static void test_half_open_single_probe(void **state)
{
    rf_breakers *b = breakers_new(2, 1000);
    fail_model(b, "p", "m", 2, T0);
    int64_t t = T0 + 1000;
    /* ready_at only looks: asking twice does not use up the probe */
    assert_int_equal(breakers_ready_at(b, "p", "m", t), 0);
    assert_int_equal(breakers_ready_at(b, "p", "m", t), 0);
    cJSON *root = snapshot(b, t);
    cJSON *m = breaker_obj(root, "p", "m");
    assert_string_equal(json_str(m, "breaker"), "half-open");
    assert_string_equal(json_str(m, "state"), "half-open");
    assert_null(json_str(m, "reopens_at"));
    cJSON_Delete(root);

    assert_true(breakers_allow(b, "p", "m", t));        /* the probe */
    assert_false(breakers_allow(b, "p", "m", t));       /* only one at a time */
    assert_true(breakers_allow(b, "p", "m2", t));       /* the provider is not involved */
    int64_t ready = breakers_ready_at(b, "p", "m", t + 10);
    assert_true(ready > t + 10 && ready <= t + 10 + 1000);  /* look again shortly */
    succeed(b, "p", "m", t + 100);
    for (int i = 0; i < 5; i++)
        assert_true(breakers_allow(b, "p", "m", t + 100));
    root = snapshot(b, t + 100);
    m = breaker_obj(root, "p", "m");
    assert_string_equal(json_str(m, "state"), "ok");
    assert_string_equal(json_str(m, "breaker"), "closed");
    assert_int_equal(json_int(m, "consecutive_failures"), 0);
    cJSON_Delete(root);
    breakers_free(b);
}

/* The n-th consecutive failed probe re-opens for base x 1, 1.5, 2, 2, ...; a successful
 * probe closes the breaker and resets the growth. */
static void test_probe_growth(void **state)
{
    rf_breakers *b = breakers_new(1, 1000);
    int64_t t = T0;
    fail_model(b, "p", "m", 1, t);
    assert_int_equal(breakers_ready_at(b, "p", "m", t), t + 1000);
    const long expect[] = { 1000, 1500, 2000, 2000, 2000, 2000 };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        t = breakers_ready_at(b, "p", "m", t);
        cJSON *root = snapshot(b, t);   /* half-open: what the next failure would give */
        assert_int_equal(json_int(breaker_obj(root, "p", "m"), "cooldown_ms"), expect[i]);
        cJSON_Delete(root);
        assert_true(breakers_allow(b, "p", "m", t));
        fail_model(b, "p", "m", 1, t);
        assert_false(breakers_allow(b, "p", "m", t));
        assert_int_equal(breakers_ready_at(b, "p", "m", t), t + expect[i]);
    }
    t = breakers_ready_at(b, "p", "m", t);
    assert_true(breakers_allow(b, "p", "m", t));
    succeed(b, "p", "m", t);
    fail_model(b, "p", "m", 1, t);
    assert_int_equal(breakers_ready_at(b, "p", "m", t), t + 1000);   /* reset */
    t += 1000;
    assert_true(breakers_allow(b, "p", "m", t));
    fail_model(b, "p", "m", 1, t);
    assert_int_equal(breakers_ready_at(b, "p", "m", t), t + 1000);   /* first probe: base */
    cJSON *root = snapshot(b, t);
    assert_int_equal(json_int(breaker_obj(root, "p", "m"), "opened"), 9);
    cJSON_Delete(root);
    breakers_free(b);
}

static void test_lost_probe_expires(void **state)
{
    rf_breakers *b = breakers_new(1, 1000);
    fail_provider(b, "p", NULL, 1, T0);
    int64_t t = T0 + 1000;
    assert_true(breakers_allow(b, "p", "m", t));        /* the probe, never recorded */
    assert_false(breakers_allow(b, "p", "m", t + 60000));
    assert_true(breakers_ready_at(b, "p", "m", t + 60000) > t + 60000);
    /* five minutes later it is presumed lost: a new probe may go */
    assert_int_equal(breakers_ready_at(b, "p", "m", t + 300000), 0);
    assert_true(breakers_allow(b, "p", "m", t + 300000));
    assert_false(breakers_allow(b, "p", "m", t + 300000));
    breakers_free(b);
}

static void test_release_gives_probe_back(void **state)
{
    rf_breakers *b = breakers_new(1, 1000);
    fail_model(b, "p", "m", 1, T0);
    int64_t t = T0 + 1000;
    assert_true(breakers_allow(b, "p", "m", t));
    assert_false(breakers_allow(b, "p", "m", t));
    breakers_release(b, "p", "m", t);                   /* never sent */
    assert_true(breakers_allow(b, "p", "m", t));
    breakers_release(b, "p", "m", t);
    breakers_release(b, "nobody", "x", t);              /* unknown: nothing happens */
    breakers_release(b, "p", NULL, t);
    cJSON *root = snapshot(b, t);
    assert_int_equal(json_int(breaker_obj(root, "p", "m"), "requests"), 1);  /* not counted */
    cJSON_Delete(root);
    breakers_free(b);
}

static void test_late_results_ignored_while_open(void **state)
{
    rf_breakers *b = breakers_new(2, 1000);
    fail_model(b, "p", "m", 2, T0);
    /* a success from an attempt admitted before the breaker opened */
    succeed(b, "p", "m", T0 + 10);
    assert_false(breakers_allow(b, "p", "m", T0 + 10));
    /* and late failures do not push the cooldown out */
    fail_model(b, "p", "m", 3, T0 + 500);
    assert_int_equal(breakers_ready_at(b, "p", "m", T0 + 500), T0 + 1000);
    cJSON *root = snapshot(b, T0 + 500);
    assert_int_equal(json_int(breaker_obj(root, "p", "m"), "opened"), 1);
    assert_int_equal(json_int(breaker_obj(root, "p", "m"), "requests"), 6);
    cJSON_Delete(root);
    breakers_free(b);
}

/* ---- S15: a flapping primary ---- */

/* failoverbench's S15 (scenarios/catalogue.yaml): the primary answers 503 for the first
 * down_ms after the start, then is healthy; count requests, one every interval_ms, each
 * sent when the previous one has ended if that is later.  Played through router.c
 * (router_first / router_after, as jobs.c does) with the breaker checks the runner makes,
 * on an injected monotonic clock.  OpenRouter-style: both hops on one provider. */
typedef struct s15_setup {
    int count;
    long interval_ms, down_ms, cooldown_ms;
    int retries;
    long answer_ms;          /* a successful answer's latency (60 tokens streamed) */
} s15_setup;

typedef struct s15_result {
    int served, requests_during_down, served_during_down, primary_attempts_during_down;
    long first_primary_ok_ms;   /* since the start; -1 = never */
    long longest_request_ms;
} s15_result;

/* One request; returns 1 when it was answered.  *now advances. */
static int s15_request(rf_breakers *b, const rf_config *cfg, const rf_tier *tier,
                       const s15_setup *su, int64_t start, int64_t *now, unsigned seed,
                       s15_result *res)
{
    const rf_provider *prov = &cfg->providers[0];
    route_state s = { cfg, tier, 0, 0, 0, 0, NULL, 0, &seed };
    route_decision d;
    router_first(b, &s, *now, &d);
    for (int step = 0; step < 100; step++) {
        if (d.action != RD_SEND)
            return 0;
        if (d.new_hop) {
            s.hop_index = d.hop_index;
            s.hop_attempts = 0;
            s.hop_sent = 0;
        } else {
            s.hop_attempts++;
        }
        *now += d.delay_ms;
        const rf_hop *hop = &tier->route[s.hop_index];
        route_outcome o = { .event = RO_ANSWERED, .retry_after_ms = -1 };
        if (!breakers_allow(b, hop->provider, hop->model, *now)) {
            o.event = RO_SKIPPED;          /* the runner: "the breaker's probe is out" */
            o.retry_in_ms = 200;
        } else {
            int primary = s.hop_index == 0;
            long at = (long)(*now - start);
            long status = primary && at < su->down_ms ? 503 : 200;
            if (primary && at < su->down_ms)
                res->primary_attempts_during_down++;
            *now += status == 200 ? su->answer_ms : 20;
            breaker_result r = {
                .scope = breakers_scope_of(RF_TE_NONE, status, 0), .http_status = status,
                .retry_after_ms = -1, .latency_ms = status == 200 ? su->answer_ms : 20,
                .error = status == 200 ? NULL : "HTTP 503: overloaded",
                .failure_threshold = prov->failure_threshold, .cooldown_ms = prov->cooldown_ms,
            };
            breakers_record(b, hop->provider, hop->model, &r, *now);
            s.hop_sent = 1;
            rf_attempt a = { .transport = RF_TE_NONE, .http_status = status, .retry_after_ms = -1 };
            o.outcome = router_classify(&a, tier->retry_after_max_ms);
            if (o.outcome == RF_OUT_SUCCESS) {
                if (primary && res->first_primary_ok_ms < 0)
                    res->first_primary_ok_ms = at;
                return 1;
            }
        }
        router_after(b, &s, &o, *now, &d);
    }
    return 0;
}

static void s15_play(const s15_setup *su, s15_result *res)
{
    rf_provider prov = { .name = "or", .failure_threshold = 5, .cooldown_ms = su->cooldown_ms };
    rf_hop route[2] = { { "or", "failoverbench/fb-s15-flap" }, { "or", "failoverbench/fb-ok" } };
    rf_config cfg = { .providers = &prov, .providers_len = 1 };
    rf_tier tier = {
        .name = "s15", .route = route, .route_len = 2, .allow_fallbacks = 1,
        .retries = su->retries, .retry_base_ms = 250, .retry_cap_ms = 8000,
        .retry_after_max_ms = 30000, .timeout_ms = 60000, .on_exhausted = RF_EXHAUSTED_FAIL,
    };
    rf_breakers *b = breakers_new(5, 30000);   /* main.c's; the provider's settings win */
    assert_non_null(b);
    memset(res, 0, sizeof *res);
    res->first_primary_ok_ms = -1;
    int64_t start = T0, now = T0;
    for (int i = 0; i < su->count; i++) {
        int64_t target = start + (int64_t)i * su->interval_ms;
        if (now < target)
            now = target;
        int64_t sent = now;
        int down = sent - start < su->down_ms;
        int ok = s15_request(b, &cfg, &tier, su, start, &now, 1000u + (unsigned)i, res);
        res->served += ok;
        res->requests_during_down += down;
        res->served_during_down += down && ok;
        if (now - sent > res->longest_request_ms)
            res->longest_request_ms = (long)(now - sent);
    }
    breakers_free(b);
}

/* The catalogue's own timings: 20 requests every 4 s, 503 for 60 s, at the default 30 s
 * cooldown and the default 2 retries.  Checks: every request answered (served during the
 * outage), none over 30 s, the primary answers again within 30 s of its recovery, and no
 * more primary attempts during the outage than requests. */
static void test_s15_catalogue_timings(void **state)
{
    s15_setup su = { .count = 20, .interval_ms = 4000, .down_ms = 60000, .cooldown_ms = 30000,
                     .retries = 2, .answer_ms = 1000 };
    s15_result r;
    s15_play(&su, &r);
    print_message("S15: %d/%d served, %d/%d during the outage, %d primary attempts then; "
                  "primary answered again %+.1f s after recovery\n", r.served, su.count,
                  r.served_during_down, r.requests_during_down, r.primary_attempts_during_down,
                  (r.first_primary_ok_ms - su.down_ms) / 1000.0);
    assert_int_equal(r.served, su.count);
    assert_int_equal(r.served_during_down, r.requests_during_down);
    assert_true(r.longest_request_ms <= 30000);
    assert_true(r.first_primary_ok_ms >= su.down_ms);
    assert_true(r.first_primary_ok_ms - su.down_ms <= 30000);
    assert_true(r.primary_attempts_during_down <= r.requests_during_down);
}

/* The catalogue's fast sequence (10 requests every 1.2 s, 503 for 6 s: the wall's "fast"
 * profile), with the cooldown scaled like the outage (30 s -> 3 s): back within the
 * scaled 30 s, no request over the fast 10 s. */
static void test_s15_fast_sequence(void **state)
{
    s15_setup su = { .count = 10, .interval_ms = 1200, .down_ms = 6000, .cooldown_ms = 3000,
                     .retries = 2, .answer_ms = 400 };
    s15_result r;
    s15_play(&su, &r);
    print_message("S15 fast: %d/%d served; primary answered again %+.1f s after recovery\n",
                  r.served, su.count, (r.first_primary_ok_ms - su.down_ms) / 1000.0);
    assert_int_equal(r.served, su.count);
    assert_int_equal(r.served_during_down, r.requests_during_down);
    assert_true(r.longest_request_ms <= 10000);
    assert_true(r.first_primary_ok_ms >= su.down_ms);
    assert_true(r.first_primary_ok_ms - su.down_ms <= 3000);
}

/* Whatever the tier's retries (how fast the breaker opens), a recovered primary is used
 * again within one cooldown as long as requests keep coming (30 of them here).  With 1 to
 * 3 retries that happens inside the catalogue's 20; with 0 the breaker opens at 16 s, its
 * probe fails at 48 s, and it admits the next probe at 78 s: after the 20th request
 * (76 s), 20 s after recovery. */
static void test_s15_every_retry_setting(void **state)
{
    for (int retries = 0; retries <= 3; retries++) {
        s15_setup su = { .count = 30, .interval_ms = 4000, .down_ms = 60000,
                         .cooldown_ms = 30000, .retries = retries, .answer_ms = 1000 };
        s15_result r;
        s15_play(&su, &r);
        print_message("S15 with %d retries: primary answered again %+.1f s after recovery\n",
                      retries, (r.first_primary_ok_ms - su.down_ms) / 1000.0);
        assert_int_equal(r.served, su.count);
        assert_true(r.first_primary_ok_ms >= su.down_ms);
        assert_true(r.first_primary_ok_ms - su.down_ms <= 30000);
        if (retries > 0)
            assert_true(r.first_primary_ok_ms < 20 * su.interval_ms);
    }
}

int main(void)
{
    rf_log_set_level(RF_LOG_ERROR);   /* transitions log WARN lines: test_breakers_report.c */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_of),
        cmocka_unit_test(test_model_outage_leaves_other_models),
        cmocka_unit_test(test_provider_wide_failures),
        cmocka_unit_test(test_model_404_down_at_once),
        cmocka_unit_test(test_request_errors_count_against_nobody),
        cmocka_unit_test(test_model_failure_and_the_provider),
        cmocka_unit_test(test_provider_failure_releases_model_probe),
        cmocka_unit_test(test_both_must_allow),
        cmocka_unit_test(test_per_provider_settings),
        cmocka_unit_test(test_retry_after_cooldown),
        cmocka_unit_test(test_half_open_single_probe),
        cmocka_unit_test(test_probe_growth),
        cmocka_unit_test(test_lost_probe_expires),
        cmocka_unit_test(test_release_gives_probe_back),
        cmocka_unit_test(test_late_results_ignored_while_open),
        cmocka_unit_test(test_s15_catalogue_timings),
        cmocka_unit_test(test_s15_fast_sequence),
        cmocka_unit_test(test_s15_every_retry_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
