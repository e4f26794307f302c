/* test_breakers_report.c — what the breakers tell: the listener (once per transition,
 * never under the lock, callable back), the log lines, the remote view, providers.json,
 * health and statistics, and many breakers and threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "breakers_int.h"   /* the lock, to prove the listener and remote run without it */
#include "breakers_test.h"
#include "log.h"

static char log_path[] = "/tmp/test_breakers.log.XXXXXX";

/* ---- the listener ---- */

#define EVENTS_KEPT 32

typedef struct seen_event {
    char provider[32], model[32];   /* model "" = provider-wide */
    rf_breaker_state from, to;
    char reason[BREAKER_REASON_MAX];
    int down;
    long cooldown_ms;
    int64_t until_ms, at_ms;
} seen_event;

typedef struct listener_log {
    rf_breakers *b;
    int reenter;                /* call breakers_* from inside the listener */
    int unlocked;               /* every call found the breakers lock free */
    size_t n;
    seen_event ev[EVENTS_KEPT];
} listener_log;

static void on_event(const breaker_event *e, void *ud)
{
    listener_log *l = ud;
    /* the lock is not held: trylock succeeds (a held default mutex would refuse) */
    if (pthread_mutex_trylock(&l->b->lock) == 0)
        pthread_mutex_unlock(&l->b->lock);
    else
        l->unlocked = 0;
    if (l->n < EVENTS_KEPT) {
        seen_event *s = &l->ev[l->n];
        snprintf(s->provider, sizeof s->provider, "%s", e->provider);
        snprintf(s->model, sizeof s->model, "%s", e->model ? e->model : "");
        s->from = e->from;
        s->to = e->to;
        snprintf(s->reason, sizeof s->reason, "%s", e->reason);
        s->down = e->down;
        s->cooldown_ms = e->cooldown_ms;
        s->until_ms = e->until_ms;
        s->at_ms = e->at_ms;
    }
    l->n++;
    if (l->reenter) {   /* every entry point, from inside: must not deadlock */
        breakers_ready_at(l->b, e->provider, e->model, e->at_ms);
        breakers_allow(l->b, "elsewhere", "x", e->at_ms);
        breakers_release(l->b, "elsewhere", "x", e->at_ms);
        breakers_note_fallback(l->b, "elsewhere");
        char *j = breakers_to_json(l->b, e->at_ms, WALL0);
        free(j);
        rf_provider_health *h = NULL;
        long n = breakers_health(l->b, e->at_ms, 1, &h);
        breakers_health_free(h, n > 0 ? (size_t)n : 0);
    }
}

static void assert_event(const listener_log *l, size_t i, const char *model,
                         rf_breaker_state from, rf_breaker_state to, const char *reason,
                         int64_t at_ms, long cooldown_ms)
{
    assert_true(i < l->n);
    const seen_event *s = &l->ev[i];
    assert_string_equal(s->provider, "p");
    assert_string_equal(s->model, model ? model : "");
    assert_int_equal(s->from, from);
    assert_int_equal(s->to, to);
    if (!strstr(s->reason, reason))
        fail_msg("event %zu reason \"%s\" lacks \"%s\"", i, s->reason, reason);
    assert_int_equal(s->at_ms, at_ms);
    assert_int_equal(s->cooldown_ms, cooldown_ms);
    assert_int_equal(s->until_ms, to == RF_BREAKER_OPEN ? at_ms + cooldown_ms : 0);
}

static void test_listener_every_transition_once(void **state)
{
    rf_breakers *b = breakers_new(3, 1000);
    listener_log l = { .b = b, .unlocked = 1 };
    breakers_set_listener(b, on_event, &l);

    fail_model(b, "p", "m", 2, T0);
    assert_int_equal(l.n, 0);
    fail_model(b, "p", "m", 1, T0 + 5);                                   /* closed -> open */
    assert_int_equal(l.n, 1);
    assert_event(&l, 0, "m", RF_BREAKER_CLOSED, RF_BREAKER_OPEN,
                 "3 consecutive failures, last HTTP 503", T0 + 5, 1000);
    fail_model(b, "p", "m", 2, T0 + 10);                                  /* late: nothing */
    /* looking never reports: ready_at, providers.json and health past the cooldown */
    assert_int_equal(breakers_ready_at(b, "p", "m", T0 + 2000), 0);
    free(breakers_to_json(b, T0 + 2000, WALL0));
    rf_provider_health *h = NULL;
    long n = breakers_health(b, T0 + 2000, 1, &h);
    breakers_health_free(h, (size_t)n);
    assert_int_equal(l.n, 1);
    /* open -> half-open is noticed by allow; at_ms says when it took effect */
    assert_true(breakers_allow(b, "p", "m", T0 + 2000));
    assert_int_equal(l.n, 2);
    assert_event(&l, 1, "m", RF_BREAKER_OPEN, RF_BREAKER_HALF_OPEN, "cooldown", T0 + 1005, 0);
    fail_model(b, "p", "m", 1, T0 + 2010);                                /* half-open -> open */
    assert_int_equal(l.n, 3);
    assert_event(&l, 2, "m", RF_BREAKER_HALF_OPEN, RF_BREAKER_OPEN, "probe 1 failed: HTTP 503",
                 T0 + 2010, 1000);
    /* a record past the cooldown reports both the half-open and the close */
    assert_true(breakers_allow(b, "p", "m", T0 + 3010));
    assert_int_equal(l.n, 4);
    succeed(b, "p", "m", T0 + 3020);                                      /* half-open -> closed */
    assert_int_equal(l.n, 5);
    assert_event(&l, 3, "m", RF_BREAKER_OPEN, RF_BREAKER_HALF_OPEN, "cooldown", T0 + 3010, 0);
    assert_event(&l, 4, "m", RF_BREAKER_HALF_OPEN, RF_BREAKER_CLOSED, "probe succeeded",
                 T0 + 3020, 0);
    /* provider-wide, at once: model NULL, down */
    record(b, "p", "m", RF_TE_NONE, 401, T0 + 4000);
    assert_int_equal(l.n, 6);
    assert_event(&l, 5, NULL, RF_BREAKER_CLOSED, RF_BREAKER_OPEN, "HTTP 401", T0 + 4000, 1000);
    assert_true(l.ev[5].down);
    /* a failure past the cooldown with no probe out (admitted before it opened) is stale:
     * it reports the half-open and re-opens nothing */
    fail_provider(b, "p", NULL, 1, T0 + 6000);
    assert_int_equal(l.n, 7);
    assert_event(&l, 6, NULL, RF_BREAKER_OPEN, RF_BREAKER_HALF_OPEN, "cooldown", T0 + 5000, 0);
    assert_true(l.unlocked);
    breakers_set_listener(b, NULL, NULL);
    fail_model(b, "p", "m3", 3, T0 + 7000);
    assert_int_equal(l.n, 7);
    breakers_free(b);
}

/* The listener may call into the breakers: no deadlock, and it never runs under the lock. */
static void test_listener_reentry(void **state)
{
    rf_breakers *b = breakers_new(1, 100);
    listener_log l = { .b = b, .unlocked = 1, .reenter = 1 };
    breakers_set_listener(b, on_event, &l);
    int64_t t = T0;
    fail_model(b, "p", "m", 1, t);                   /* closed -> open */
    for (int i = 0; i < 20; i++) {
        t += 100;
        assert_true(breakers_allow(b, "p", "m", t));  /* open -> half-open, the probe */
        if (i % 2) {
            succeed(b, "p", "m", t);                 /* half-open -> closed */
            fail_model(b, "p", "m", 1, t);           /* closed -> open */
        } else {
            fail_model(b, "p", "m", 1, t);           /* half-open -> open */
        }
    }
    assert_int_equal(l.n, 1 + 10 * 3 + 10 * 2);
    assert_true(l.unlocked);
    breakers_free(b);
}

/* Every transition is one log line naming provider, model, reason and cooldown. */
static void test_transitions_logged(void **state)
{
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long start = ftell(f);
    rf_breakers *b = breakers_new(2, 1500);
    fail_model(b, "logp", "vendor/model:free", 2, T0);
    assert_true(breakers_allow(b, "logp", "vendor/model:free", T0 + 1500));
    succeed(b, "logp", "vendor/model:free", T0 + 1600);
    record(b, "logp", "x", RF_TE_TLS, 0, T0 + 2000);
    record(b, "logp", "x", RF_TE_TLS, 0, T0 + 2000);
    breakers_free(b);
    fseek(f, start, SEEK_SET);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    const char *want[] = {
        "warn: breaker of vendor/model:free on logp: closed -> open: 2 consecutive failures, "
        "last HTTP 503; cooldown 1500 ms\n",
        "info: breaker of vendor/model:free on logp: open -> half-open: cooldown of 1500 ms over\n",
        "info: breaker of vendor/model:free on logp: half-open -> closed: probe succeeded\n",
        "warn: provider-wide breaker of logp: closed -> open: 2 consecutive failures, last TLS "
        "failure; cooldown 1500 ms\n",
    };
    const char *at = text;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(at, want[i]);
        if (!hit)
            fail_msg("log line %zu missing:\n%s\nlog:\n%s", i, want[i], text);
        at = hit + strlen(want[i]);
    }
    int lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 4);
}

/* ---- the remote view ---- */

typedef struct remote_view {
    rf_breakers *b;
    const char *provider, *model;   /* open elsewhere: exactly this one (model NULL = wide) */
    int64_t until_ms;
    int calls, unlocked;
} remote_view;

static int remote_is_open(const char *provider, const char *model, int64_t now_ms,
                          int64_t *until_ms, void *ud)
{
    remote_view *v = ud;
    v->calls++;
    if (pthread_mutex_trylock(&v->b->lock) == 0)
        pthread_mutex_unlock(&v->b->lock);
    else
        v->unlocked = 0;
    if (!v->provider || strcmp(provider, v->provider) != 0)
        return 0;
    if (v->model ? !model || strcmp(model, v->model) != 0 : model != NULL)
        return 0;
    if (v->until_ms && v->until_ms <= now_ms)
        return 0;   /* expired */
    *until_ms = v->until_ms;
    return 1;
}

static void test_remote_view(void **state)
{
    rf_breakers *b = breakers_new(5, 1000);
    remote_view v = { .b = b, .provider = "p", .model = "m", .until_ms = T0 + 5000,
                      .unlocked = 1 };
    assert_true(breakers_allow(b, "p", "m", T0));             /* no remote view yet */
    breakers_release(b, "p", "m", T0);
    breakers_set_remote(b, remote_is_open, &v);
    assert_false(breakers_allow(b, "p", "m", T0));            /* opened by another host */
    assert_int_equal(breakers_ready_at(b, "p", "m", T0), T0 + 5000);
    assert_true(breakers_allow(b, "p", "m2", T0));            /* other models: fine */
    assert_true(breakers_allow(b, "p", "m", T0 + 5000));      /* expired elsewhere */
    assert_int_equal(breakers_ready_at(b, "p", "m", T0 + 5000), 0);
    /* provider-wide elsewhere: every model */
    v.model = NULL;
    assert_false(breakers_allow(b, "p", "m2", T0));
    assert_false(breakers_allow(b, "p", NULL, T0));
    assert_int_equal(breakers_ready_at(b, "p", "any", T0 + 100), T0 + 5000);
    assert_true(breakers_allow(b, "q", "m2", T0));
    /* open with no known end: refused, and looked at again soon */
    v.until_ms = 0;
    assert_false(breakers_allow(b, "p", "m", T0));
    int64_t at = breakers_ready_at(b, "p", "m", T0);
    assert_true(at > T0 && at <= T0 + 1000);
    /* the later of local and remote */
    v.until_ms = T0 + 200;
    fail_model(b, "p", "m", 5, T0);                           /* local until T0 + 1000 */
    assert_int_equal(breakers_ready_at(b, "p", "m", T0), T0 + 1000);
    assert_true(v.calls > 0);
    assert_true(v.unlocked);
    breakers_set_remote(b, NULL, NULL);
    assert_true(breakers_allow(b, "p", "m2", T0));
    breakers_free(b);
}

/* ---- providers.json and health ---- */

static void test_providers_json_shape(void **state)
{
    rf_breakers *b = breakers_new(3, 30000);
    for (long i = 1; i <= 3; i++) {
        breaker_result r = result(RF_TE_NONE, 200);
        r.latency_ms = i * 100;
        breakers_record(b, "or", "good/m", &r, T0);
    }
    breaker_result bad = result(RF_TE_NONE, 503);
    bad.error = "HTTP 503: overloaded";
    for (int i = 0; i < 3; i++)
        breakers_record(b, "or", "bad/m", &bad, T0 + 1000);
    breakers_note_fallback(b, "or");
    record(b, "dead", NULL, RF_TE_NONE, 401, T0);

    cJSON *root = snapshot(b, T0 + 1000);
    static const char *const fields[] = {
        "state", "breaker", "reopens_at", "consecutive_failures", "cooldown_ms", "opened",
        "last_error", "latency_ms", "requests", "failures",
    };
    const char *objs[][2] = { { "or", NULL }, { "or", "good/m" }, { "or", "bad/m" },
                              { "dead", NULL } };
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
        cJSON *o = breaker_obj(root, objs[i][0], objs[i][1]);
        assert_non_null(o);
        for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
            if (!cJSON_HasObjectItem(o, fields[k]))
                fail_msg("%s %s: no %s", objs[i][0], objs[i][1] ? objs[i][1] : "", fields[k]);
        /* providers have fallbacks and models; models have neither */
        assert_int_equal(cJSON_HasObjectItem(o, "fallbacks"), objs[i][1] == NULL);
        assert_int_equal(cJSON_HasObjectItem(o, "models"), objs[i][1] == NULL);
    }
    cJSON *p = breaker_obj(root, "or", NULL);
    assert_string_equal(json_str(p, "state"), "ok");
    assert_int_equal(json_int(p, "requests"), 6);
    assert_int_equal(json_int(p, "failures"), 3);
    assert_int_equal(json_int(p, "fallbacks"), 1);
    assert_int_equal(json_int(p, "opened"), 0);
    assert_string_equal(json_str(p, "last_error"), "HTTP 503: overloaded");
    cJSON *good = breaker_obj(root, "or", "good/m");
    cJSON *lat = cJSON_GetObjectItemCaseSensitive(good, "latency_ms");
    assert_int_equal(json_int(lat, "p50"), 200);
    assert_int_equal(json_int(lat, "p95"), 300);
    assert_null(json_str(good, "last_error"));
    assert_null(json_str(good, "reopens_at"));
    cJSON *m = breaker_obj(root, "or", "bad/m");
    assert_string_equal(json_str(m, "state"), "cooling down");
    assert_string_equal(json_str(m, "breaker"), "open");
    /* opened at monotonic T0 + 1000 for 30 s: the wall clock then reads WALL0 + 1000 */
    assert_string_equal(json_str(m, "reopens_at"), "2023-11-14T22:13:51Z");
    assert_int_equal(json_int(m, "consecutive_failures"), 3);
    assert_int_equal(json_int(m, "cooldown_ms"), 30000);
    assert_int_equal(json_int(m, "opened"), 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(m, "latency_ms"), "p50")));
    cJSON *dead = breaker_obj(root, "dead", NULL);
    assert_string_equal(json_str(dead, "state"), "down");
    assert_string_equal(json_str(dead, "reopens_at"), "2023-11-14T22:13:50Z");
    cJSON_Delete(root);

    /* the conversion follows the clocks given, not the machine's */
    char *text = breakers_to_json(b, T0 + 1000, 0);
    assert_non_null(strstr(text, "\"reopens_at\": \"1970-01-01T00:00:30Z\""));   /* bad/m */
    assert_non_null(strstr(text, "\"reopens_at\": \"1970-01-01T00:00:29Z\""));   /* dead */
    free(text);
    /* half-open, then down turns to ok after its probe */
    root = snapshot(b, T0 + 31000);
    assert_string_equal(json_str(breaker_obj(root, "or", "bad/m"), "state"), "half-open");
    assert_string_equal(json_str(breaker_obj(root, "dead", NULL), "state"), "half-open");
    cJSON_Delete(root);

    /* empty */
    rf_breakers *e = breakers_new(0, 0);
    root = snapshot(e, T0);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(root, "providers"));
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "providers")->child);
    cJSON_Delete(root);
    text = breakers_to_json(NULL, T0, WALL0);
    assert_string_equal(text, "{\n  \"providers\": {}\n}");
    free(text);
    breakers_free(e);
    breakers_free(b);
}

static void test_stats(void **state)
{
    rf_breakers *b = breakers_new(5, 1000);
    /* 300 samples: the ring keeps the last 256 (45..300) */
    for (long i = 1; i <= 300; i++) {
        breaker_result r = result(RF_TE_NONE, 200);
        r.latency_ms = i;
        breakers_record(b, "p", NULL, &r, T0);
    }
    char long_error[400];
    memset(long_error, 'x', sizeof long_error - 1);
    long_error[sizeof long_error - 1] = '\0';
    breaker_result r = result(RF_TE_NONE, 500);
    r.latency_ms = 9999;
    r.error = long_error;
    breakers_record(b, "p", NULL, &r, T0);
    r.error = NULL;
    r.latency_ms = -1;
    breakers_record(b, "fresh", NULL, &r, T0);

    cJSON *root = snapshot(b, T0);
    cJSON *p = breaker_obj(root, "p", NULL);
    cJSON *lat = cJSON_GetObjectItemCaseSensitive(p, "latency_ms");
    /* samples 45..300: nearest-rank p50 = 45 + 128 - 1, p95 = 45 + 244 - 1 */
    assert_int_equal(json_int(lat, "p50"), 172);
    assert_int_equal(json_int(lat, "p95"), 288);
    assert_int_equal(json_int(p, "requests"), 301);
    assert_int_equal(json_int(p, "failures"), 1);
    assert_int_equal(strlen(json_str(p, "last_error")), 200);
    cJSON *fresh = breaker_obj(root, "fresh", NULL);
    lat = cJSON_GetObjectItemCaseSensitive(fresh, "latency_ms");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lat, "p50")));
    assert_null(json_str(fresh, "last_error"));
    cJSON_Delete(root);
    breakers_free(b);
}

static void test_health(void **state)
{
    rf_provider_health *h = NULL;
    assert_int_equal(breakers_health(NULL, T0, 1, &h), 0);
    assert_null(h);
    rf_breakers *b = breakers_new(2, 1000);
    assert_int_equal(breakers_health(b, T0, 1, &h), 0);
    breakers_health_free(h, 0);

    succeed(b, "good", "m", T0);
    fail_model(b, "or", "bad/m", 2, T0);                  /* the model opens */
    succeed(b, "or", "fine/m", T0);
    record(b, "gone", "m", RF_TE_NONE, 401, T0);
    long n = breakers_health(b, T0, 0, &h);
    assert_int_equal(n, 3);                               /* providers only, first seen */
    assert_string_equal(h[0].provider, "good");
    assert_null(h[0].model);
    assert_string_equal(h[0].state, "ok");
    assert_string_equal(h[1].provider, "or");
    assert_string_equal(h[1].state, "ok");                /* one model out: provider up */
    assert_true(h[1].breaker_closed);
    assert_int_equal(h[1].requests, 3);
    assert_int_equal(h[1].failures, 2);
    assert_string_equal(h[2].state, "down");
    assert_false(h[2].breaker_closed);
    breakers_health_free(h, (size_t)n);

    n = breakers_health(b, T0, 1, &h);
    assert_int_equal(n, 7);                               /* then every model breaker */
    for (long i = 0; i < 3; i++)
        assert_null(h[i].model);
    assert_string_equal(h[3].provider, "good");
    assert_string_equal(h[3].model, "m");
    assert_string_equal(h[4].model, "bad/m");
    assert_string_equal(h[4].state, "cooling down");
    assert_false(h[4].breaker_closed);
    assert_string_equal(h[4].last_error, "HTTP error");
    assert_string_equal(h[5].model, "fine/m");
    assert_true(h[5].breaker_closed);
    assert_string_equal(h[6].provider, "gone");
    assert_true(h[6].breaker_closed);                     /* 401 is the provider's */
    breakers_health_free(h, (size_t)n);

    n = breakers_health(b, T0 + 1000, 1, &h);             /* past the cooldown */
    assert_string_equal(h[4].state, "half-open");
    assert_false(h[4].breaker_closed);
    breakers_health_free(h, (size_t)n);
    breakers_free(b);
}

static void test_many_keys(void **state)
{
    /* enough records to rehash a few times */
    rf_breakers *b = breakers_new(1, 1000);
    char model[32];
    for (int i = 0; i < 500; i++) {
        snprintf(model, sizeof model, "model-%d", i);
        if (i % 2)
            fail_model(b, "p", model, 1, T0);
        else
            succeed(b, "p", model, T0);
    }
    for (int i = 0; i < 500; i++) {
        snprintf(model, sizeof model, "model-%d", i);
        assert_int_equal(breakers_allow(b, "p", model, T0), i % 2 == 0);
        if (i % 2 == 0)
            breakers_release(b, "p", model, T0);
    }
    for (int i = 0; i < 500; i++) {
        snprintf(model, sizeof model, "model-%d", i);
        assert_int_equal(breakers_ready_at(b, "p", model, T0 + 1000), 0);
    }
    cJSON *root = snapshot(b, T0);
    cJSON *models = cJSON_GetObjectItemCaseSensitive(breaker_obj(root, "p", NULL), "models");
    assert_int_equal(cJSON_GetArraySize(models), 500);
    cJSON_Delete(root);
    breakers_free(b);
}

/* Many threads race for the half-open probe: exactly one wins. */
typedef struct race {
    rf_breakers *b;
    pthread_barrier_t *start;
    int admitted;
} race;

static void *race_main(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->start);
    for (int i = 0; i < 1000; i++)
        r->admitted += breakers_allow(r->b, "p", "m", T0 + 1000);
    return NULL;
}

static void test_probe_race(void **state)
{
    enum { THREADS = 8 };
    rf_breakers *b = breakers_new(1, 1000);
    listener_log l = { .b = b, .unlocked = 1 };
    breakers_set_listener(b, on_event, &l);
    fail_model(b, "p", "m", 1, T0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    race r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (race){ b, &start, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
    }
    int admitted = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        admitted += r[i].admitted;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(admitted, 1);
    assert_int_equal(l.n, 2);   /* opened, then half-open: reported once whoever saw it */
    breakers_free(b);
}

int main(void)
{
    int fd = mkstemp(log_path);   /* the log goes here: test_transitions_logged reads it */
    if (fd < 0 || rf_log_open(log_path) < 0)
        return 1;
    close(fd);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_every_transition_once),
        cmocka_unit_test(test_listener_reentry),
        cmocka_unit_test(test_transitions_logged),
        cmocka_unit_test(test_remote_view),
        cmocka_unit_test(test_providers_json_shape),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_probe_race),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(log_path);
    return failed;
}
