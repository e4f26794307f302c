/* test_metrics.c — metrics.c: the exposition text of the counters and the histogram
 * (cmocka): label escaping, HELP/TYPE for every family, exact spend sums, counters that
 * never go down, stable order, cumulative buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static int reset(void **state)
{
    metrics_reset();
    return 0;
}

static void assert_line(const char *text, const char *line)
{
    char want[1024];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want) && strncmp(text, want + 1, strlen(want + 1)))
        fail_msg("missing line: %s\n--- in:\n%s", line, text);
}

static void test_every_family_has_help_and_type(void **state)
{
    char *t = metrics_render();
    assert_non_null(t);
    static const char *const counters[] = {
        "routefs_jobs_total", "routefs_attempts_total", "routefs_retries_total",
        "routefs_fallbacks_total", "routefs_spend_usd_total",
        "routefs_breaker_transitions_total", "routefs_store_failures_total", NULL};
    char line[256];
    for (size_t i = 0; counters[i]; i++) {
        snprintf(line, sizeof line, "# TYPE %s counter", counters[i]);
        assert_line(t, line);
        snprintf(line, sizeof line, "# HELP %s ", counters[i]);
        assert_non_null(strstr(t, line));
    }
    assert_line(t, "# TYPE routefs_attempt_duration_seconds histogram");
    /* an unlabelled counter exists from the start, so that rate() and alerts see it */
    assert_line(t, "routefs_store_failures_total 0");
    /* nothing else before any event */
    assert_null(strstr(t, "{"));
    free(t);
}

static void test_label_values_escaped(void **state)
{
    metrics_attempt("a\"b\\c\nd", "p\"", "success", 20);
    metrics_spend("t", "pr\\v", "model \"x\"\nline2", 0.5);
    metrics_breaker("prov\n", "vendor/m:free", "open");
    metrics_job("tier\\", "done");
    metrics_fallback("t\"", "from\\");
    char *t = metrics_render();
    assert_non_null(t);
    assert_line(t, "routefs_attempts_total{tier=\"a\\\"b\\\\c\\nd\",provider=\"p\\\"\","
                   "outcome=\"success\"} 1");
    assert_line(t, "routefs_spend_usd_total{tier=\"t\",provider=\"pr\\\\v\","
                   "model=\"model \\\"x\\\"\\nline2\"} 0.5");
    assert_line(t, "routefs_breaker_transitions_total{provider=\"prov\\n\","
                   "model=\"vendor/m:free\",to=\"open\"} 1");
    assert_line(t, "routefs_jobs_total{tier=\"tier\\\\\",outcome=\"done\"} 1");
    assert_line(t, "routefs_fallbacks_total{tier=\"t\\\"\",from=\"from\\\\\"} 1");
    assert_line(t, "routefs_attempt_duration_seconds_count{tier=\"a\\\"b\\\\c\\nd\","
                   "provider=\"p\\\"\"} 1");
    /* no raw newline inside any sample line: every line is a comment or name{...} value */
    for (char *l = t; *l;) {
        char *nl = strchr(l, '\n');
        assert_non_null(nl);
        if (*l != '#') {
            assert_true(!strncmp(l, "routefs_", 8));
            char *sp = memrchr(l, ' ', (size_t)(nl - l));
            assert_true(sp && sp < nl);
        }
        l = nl + 1;
    }
    free(t);
}

static void test_label_value_helper(void **state)
{
    char *v = metrics_label_value("a\"b\\c\nd");
    assert_string_equal(v, "a\\\"b\\\\c\\nd");
    free(v);
    v = metrics_label_value(NULL);
    assert_string_equal(v, "");
    free(v);
    v = metrics_label_value("plain/model:free");
    assert_string_equal(v, "plain/model:free");
    free(v);
}

static void test_long_label_not_truncated(void **state)
{
    char model[3000];
    memset(model, 'm', sizeof model - 1);
    model[sizeof model - 1] = '\0';
    model[1500] = '"';
    metrics_spend("t", "p", model, 1);
    char *t = metrics_render();
    assert_non_null(t);
    char *at = strstr(t, "routefs_spend_usd_total{");
    assert_non_null(at);
    char *end = strchr(at, '\n');
    /* the whole name, with one escaped quote, then "} 1" */
    size_t want = strlen("routefs_spend_usd_total{tier=\"t\",provider=\"p\",model=\"") +
                  (sizeof model - 1) + 1 + strlen("\"} 1");
    assert_int_equal((size_t)(end - at), want);
    free(t);
}

static void test_spend_is_exact_and_monotonic(void **state)
{
    for (int i = 0; i < 10; i++)
        metrics_spend("fast", "or", "m", 0.1);   /* 0.1 ten times: 1, not 0.9999999 */
    metrics_spend("fast", "or", "m", 0.000000001);
    metrics_spend("fast", "or", "m", -5);        /* refunds and nonsense never lower it */
    metrics_spend("fast", "or", "m", NAN);
    metrics_spend("fast", "or", "m", INFINITY);
    metrics_spend("fast", "or", "free", 0);      /* a free model's series exists */
    char *t = metrics_render();
    assert_line(t, "routefs_spend_usd_total{tier=\"fast\",provider=\"or\",model=\"m\"} 1.000000001");
    assert_line(t, "routefs_spend_usd_total{tier=\"fast\",provider=\"or\",model=\"free\"} 0");
    free(t);
    metrics_spend("fast", "or", "m", 2.5);
    t = metrics_render();
    assert_line(t, "routefs_spend_usd_total{tier=\"fast\",provider=\"or\",model=\"m\"} 3.500000001");
    free(t);
}

static void test_counts_order_and_histogram(void **state)
{
    metrics_attempt("t", "b", "retry", 40);
    metrics_attempt("t", "b", "retry", 300);
    metrics_attempt("t", "a", "success", 70000);
    metrics_attempt("t", "a", "success", -1);   /* not measured: counted, no histogram sample */
    metrics_breaker("a", NULL, "open");
    metrics_breaker("a", "", "half_open");
    metrics_breaker("a", NULL, "open");
    metrics_store_failure();
    metrics_store_failure();
    char *t = metrics_render();
    assert_line(t, "routefs_attempts_total{tier=\"t\",provider=\"b\",outcome=\"retry\"} 2");
    assert_line(t, "routefs_attempts_total{tier=\"t\",provider=\"a\",outcome=\"success\"} 2");
    assert_line(t, "routefs_retries_total{tier=\"t\",provider=\"b\"} 2");
    assert_line(t, "routefs_breaker_transitions_total{provider=\"a\",model=\"\",to=\"open\"} 2");
    assert_line(t, "routefs_breaker_transitions_total{provider=\"a\",model=\"\",to=\"half_open\"} 1");
    assert_line(t, "routefs_store_failures_total 2");
    /* sorted: provider a before b */
    assert_true(strstr(t, "provider=\"a\",outcome") < strstr(t, "provider=\"b\",outcome"));
    /* histogram: b got 40 ms and 300 ms; a got 70 s (only the +Inf bucket) */
    assert_line(t, "routefs_attempt_duration_seconds_bucket{tier=\"t\",provider=\"b\",le=\"0.05\"} 1");
    assert_line(t, "routefs_attempt_duration_seconds_bucket{tier=\"t\",provider=\"b\",le=\"0.25\"} 1");
    assert_line(t, "routefs_attempt_duration_seconds_bucket{tier=\"t\",provider=\"b\",le=\"0.5\"} 2");
    assert_line(t, "routefs_attempt_duration_seconds_bucket{tier=\"t\",provider=\"b\",le=\"+Inf\"} 2");
    assert_line(t, "routefs_attempt_duration_seconds_sum{tier=\"t\",provider=\"b\"} 0.340");
    assert_line(t, "routefs_attempt_duration_seconds_bucket{tier=\"t\",provider=\"a\",le=\"60\"} 0");
    assert_line(t, "routefs_attempt_duration_seconds_bucket{tier=\"t\",provider=\"a\",le=\"+Inf\"} 1");
    assert_line(t, "routefs_attempt_duration_seconds_count{tier=\"t\",provider=\"a\"} 1");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_family_has_help_and_type, reset, reset),
        cmocka_unit_test_setup_teardown(test_label_values_escaped, reset, reset),
        cmocka_unit_test_setup_teardown(test_label_value_helper, reset, reset),
        cmocka_unit_test_setup_teardown(test_long_label_not_truncated, reset, reset),
        cmocka_unit_test_setup_teardown(test_spend_is_exact_and_monotonic, reset, reset),
        cmocka_unit_test_setup_teardown(test_counts_order_and_histogram, reset, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
