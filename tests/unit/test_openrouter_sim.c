/* test_openrouter_sim.c — the rfs-openrouter thread (openrouter.c) against a real
 * routefs-sim: published prices into prices.c and the store, the key's limits and their
 * cadence, generation lookups merged into a finished job's meta with the retry schedule,
 * the queue bound, config changes, and shutdown with lookups pending or a transfer hung.
 *
 * The sim is BUILD/routefs-sim next to this binary's directory (BUILD/unit/), or
 * $ROUTEFS_SIM; each test starts its own on a free port and stops it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "openrouter.h"
#include "prices.h"
#include "store.h"
#include "store_ledger.h"
#include "store_prompts.h"

#define KEY_ENV "RFS_TEST_OR_KEY"
#define KEY "sk-or-v1-test-key-0123456789"
#define AUTH "Authorization: Bearer " KEY

typedef struct fixture {
    char dir[64];
    store *st;
    pid_t sim;
    int port;
    char url[64];
} fixture;

static fixture *g_fx;
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static rf_config *g_cfg;

static rf_config *current_config(void)
{
    pthread_mutex_lock(&cfg_lock);
    rf_config *c = g_cfg ? config_ref(g_cfg) : NULL;
    pthread_mutex_unlock(&cfg_lock);
    return c;
}

/* Put a config in force: one OpenRouter provider "or" at base (NULL: no OpenRouter
 * provider at all). */
static void use_config(const char *base)
{
    char text[1024];
    if (base)
        snprintf(text, sizeof text,
                 "{\"providers\": {\"or\": {\"base_url\": \"%s\", \"kind\": \"openrouter\","
                 " \"api_key_env\": \"" KEY_ENV "\"}},"
                 " \"tiers\": {\"t\": {\"route\": \"a/m1\"}}}", base);
    else
        snprintf(text, sizeof text,
                 "{\"providers\": {\"plain\": {\"base_url\": \"http://127.0.0.1:9/v1\"}},"
                 " \"tiers\": {\"t\": {\"route\": \"a/m1\"}}}");
    rf_config *cfg = NULL;
    rf_err err;
    if (config_parse(text, strlen(text), &cfg, &err) < 0)
        fail_msg("config: %s", err.msg);
    pthread_mutex_lock(&cfg_lock);
    rf_config *old = g_cfg;
    g_cfg = cfg;
    pthread_mutex_unlock(&cfg_lock);
    config_unref(old);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------- the sim */

static void sim_path(char *buf, size_t len)
{
    const char *env = getenv("ROUTEFS_SIM");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char *unit_dir = dirname(self);            /* BUILD/unit */
    snprintf(buf, len, "%s/../routefs-sim", unit_dir);
}

static void sim_start(fixture *fx)
{
    char bin[PATH_MAX], port_file[128];
    sim_path(bin, sizeof bin);
    if (access(bin, X_OK) < 0)
        fail_msg("%s: %s (make builds it)", bin, strerror(errno));
    snprintf(port_file, sizeof port_file, "%s/sim.port", fx->dir);
    fx->sim = fork();
    assert_true(fx->sim >= 0);
    if (fx->sim == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(bin, bin, "--port", "0", "--port-file", port_file, "--quiet", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && fx->port <= 0; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &fx->port) != 1)
                fx->port = 0;
            fclose(f);
        }
        if (fx->port <= 0)
            sleep_ms(10);
    }
    if (fx->port <= 0)
        fail_msg("routefs-sim did not start");
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%d", fx->port);
}

static void sim_stop(fixture *fx)
{
    if (fx->sim > 0) {
        kill(fx->sim, SIGTERM);
        waitpid(fx->sim, NULL, 0);
        fx->sim = 0;
    }
}

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t collect(char *d, size_t s, size_t n, void *ud)
{
    buf *b = ud;
    b->p = realloc(b->p, b->n + s * n + 1);
    memcpy(b->p + b->n, d, s * n);
    b->n += s * n;
    b->p[b->n] = '\0';
    return s * n;
}

/* A request to the sim: the body (malloc'd) of the answer, which must be 200. */
static char *sim_http(const char *path, const char *post, const char *header)
{
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", g_fx->url, path);
    buf b = {0};
    struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    if (post)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK || status != 200)
        fail_msg("%s: %s, HTTP %ld: %s", path, curl_easy_strerror(rc), status, b.p ? b.p : "");
    return b.p ? b.p : strdup("");
}

static void sim_post(const char *path, const char *body)
{
    free(sim_http(path, body, NULL));
}

/* How many requests the sim's OpenRouter endpoint got ("/api/v1/key", ...). */
static int sim_endpoint_count(const char *name)
{
    char *text = sim_http("/stats", NULL, NULL);
    cJSON *s = cJSON_Parse(text);
    cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "endpoints"), name);
    int v = cJSON_IsNumber(n) ? n->valueint : 0;
    cJSON_Delete(s);
    free(text);
    return v;
}

/* A chat completion on the sim with our key; its generation id (malloc'd). */
static char *chat(const char *body)
{
    char *text = sim_http("/api/v1/chat/completions", body, AUTH);
    cJSON *o = cJSON_Parse(text);
    cJSON *id = cJSON_GetObjectItem(o, "id");
    assert_true(cJSON_IsString(id));
    char *copy = strdup(id->valuestring);
    cJSON_Delete(o);
    free(text);
    return copy;
}

/* ---------------------------------------------------------------- fixture */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/rfs-orsim.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    rf_err err;
    rf_err_clear(&err);
    fx->st = store_open(fx->dir, &err);
    if (!fx->st || store_start(fx->st, &err) < 0)
        fail_msg("store: %s", err.msg);
    assert_int_equal(prices_init(fx->st, &err), 0);
    g_fx = fx;
    sim_start(fx);
    char base[96];
    snprintf(base, sizeof base, "%s/api/v1", fx->url);
    use_config(base);
    setenv(KEY_ENV, KEY, 1);
    or_set_timing(NULL);
    or_set_enriched_listener(NULL, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    or_stop();
    sim_stop(fx);
    prices_shutdown();
    store_close(fx->st);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    pthread_mutex_lock(&cfg_lock);
    config_unref(g_cfg);
    g_cfg = NULL;
    pthread_mutex_unlock(&cfg_lock);
    free(fx);
    g_fx = NULL;
    return 0;
}

static void start(fixture *fx)
{
    rf_err err;
    rf_err_clear(&err);
    if (or_start(fx->st, current_config, &err) < 0)
        fail_msg("or_start: %s", err.msg);
}

/* Wait (bounded) until cond holds; fails the test after ms. */
#define WAIT_FOR(cond, ms)                                                            \
    do {                                                                              \
        int64_t until_ = now_mono_ms() + (ms);                                        \
        while (!(cond) && now_mono_ms() < until_)                                     \
            sleep_ms(10);                                                             \
        if (!(cond))                                                                  \
            fail_msg("timed out waiting for %s", #cond);                              \
    } while (0)

static or_stats stats(void)
{
    or_stats s;
    or_stats_get(&s);
    return s;
}

/* ---------------------------------------------------------------- prices */

static void test_prices_fetched_and_kept(void **state)
{
    fixture *fx = *state;
    sim_post("/control/models",
             "{\"data\": [{\"id\": \"a/m1\", \"pricing\": {\"prompt\": \"0.0000025\","
             " \"completion\": \"0.00001\"}}, {\"id\": \"b/m2:free\", \"pricing\":"
             " {\"prompt\": \"0\", \"completion\": \"0\"}}, {\"id\": \"openrouter/auto\","
             " \"pricing\": {\"prompt\": \"-1\", \"completion\": \"-1\"}}]}");
    start(fx);
    WAIT_FOR(prices_published_count(NULL) == 2, 10000);
    rf_config *cfg = current_config();
    hop_price p;
    assert_int_equal(prices_lookup(cfg, "or", "a/m1", &p), 1);
    assert_string_equal(p.source, "openrouter");
    assert_true(p.prompt_per_m == 2.5 && p.completion_per_m == 10);
    assert_int_equal(sim_endpoint_count("/api/v1/models"), 1);

    /* nonsense changes nothing */
    sim_post("/control/models", "{\"data\": [{\"id\": \"a/m1\", \"pricing\": {\"prompt\":"
                                " \"-3\", \"completion\": \"0\"}}]}");
    or_prices_refresh();
    WAIT_FOR(stats().prices_failures == 1, 10000);
    assert_int_equal(prices_lookup(cfg, "or", "a/m1", &p), 1);
    assert_true(p.prompt_per_m == 2.5);
    sim_post("/control/models", "[]");
    or_prices_refresh();
    WAIT_FOR(stats().prices_failures == 2, 10000);
    assert_int_equal(prices_published_count(NULL), 2);

    /* kept in the store: an offline mount has them */
    or_stop();
    prices_shutdown();
    rf_err err;
    assert_int_equal(prices_init(fx->st, &err), 0);
    assert_int_equal(prices_published_count(NULL), 2);
    assert_int_equal(prices_lookup(cfg, "or", "a/m1", &p), 1);
    assert_true(p.completion_per_m == 10);
    config_unref(cfg);
}

/* ---------------------------------------------------------------- the key */

static void test_key_limits(void **state)
{
    fixture *fx = *state;
    sim_post("/control/key", "{\"limit\": 10, \"limit_reset\": \"daily\","
                             " \"free_model_daily_requests\": {\"used\": 1, \"limit\": 50}}");
    sim_post("/control/behaviour", "{\"model\": \"a/m1\", \"charge_usd\": 0.25}");
    or_timing t = {.key_min_gap_ms = 100};
    or_set_timing(&t);
    start(fx);
    or_key_info k;
    WAIT_FOR(or_key_snapshot("or", &k), 10000);
    assert_true(k.has_limit && k.limit == 10);
    assert_true(k.has_limit_remaining && k.limit_remaining == 10);
    assert_string_equal(k.limit_reset, "daily");
    assert_true(k.usage == 0);
    assert_non_null(strstr(k.extra_json, "\"free_model_daily_requests\":{\"used\":1,\"limit\":50}"));
    assert_null(strstr(k.extra_json, "sim-key"));   /* the label is never kept */
    int64_t nusd, age;
    assert_int_equal(or_key_remaining_nusd("or", &nusd, &age), 1);
    assert_int_equal(nusd, 10000000000LL);
    assert_true(age >= 0 && age < 10000);
    assert_int_equal(or_key_remaining_nusd("nobody", &nusd, &age), 0);

    /* spend 0.50 on the key, then a refresh (after a 402/403, say) sees it */
    free(chat("{\"model\": \"a/m1\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"));
    free(chat("{\"model\": \"a/m1\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"));
    or_key_refresh("or");
    WAIT_FOR(or_key_snapshot("or", &k) && k.usage == 0.5, 10000);
    assert_true(k.limit_remaining == 9.5 && k.usage_daily == 0.5);
    assert_int_equal(or_key_remaining_nusd("or", &nusd, &age), 1);
    assert_int_equal(nusd, 9500000000LL);

    char *json = or_key_json();
    cJSON *o = cJSON_Parse(json);
    cJSON *or = cJSON_GetObjectItem(o, "or");
    assert_true(cJSON_GetObjectItem(or, "limit_remaining")->valuedouble == 9.5);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(or, "age_ms")));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(or, "fetched_at")));
    cJSON_Delete(o);
    free(json);

    /* in the store, and read back at the next start even with OpenRouter unreachable */
    assert_int_equal(store_flush(fx->st), 0);
    char *stored = sl_kv_get(fx->st, "openrouter.key.or", NULL);
    assert_non_null(stored);
    assert_non_null(strstr(stored, "\"limit_remaining\":9.5"));
    assert_null(strstr(stored, KEY));
    free(stored);
    or_stop();
    use_config("http://127.0.0.1:9/api/v1");
    start(fx);
    assert_int_equal(or_key_snapshot("or", &k), 1);   /* at once: from the store */
    assert_true(k.limit_remaining == 9.5 && k.fetched_ms > 0);
    WAIT_FOR(stats().key_failures == 1, 10000);
    assert_int_equal(or_key_snapshot("or", &k), 1);   /* a failed fetch changes nothing */
    assert_true(k.limit_remaining == 9.5);
}

static void test_key_cadence(void **state)
{
    fixture *fx = *state;
    or_timing t = {.key_interval_ms = 300, .key_min_gap_ms = 1000};
    or_set_timing(&t);
    start(fx);
    WAIT_FOR(sim_endpoint_count("/api/v1/key") >= 1, 10000);
    int64_t t0 = now_mono_ms();
    int first = sim_endpoint_count("/api/v1/key");
    sleep_ms(1600);
    int n = sim_endpoint_count("/api/v1/key") - first;
    int64_t elapsed = now_mono_ms() - t0;
    /* every 300 ms: about elapsed / 300 more */
    if (n < (int)(elapsed / 300) - 2 || n > (int)(elapsed / 300) + 1)
        fail_msg("%d key fetches in %lld ms with a 300 ms interval", n, (long long)elapsed);
    or_stop();

    /* on demand: a burst of refreshes is folded into one fetch per key_min_gap */
    t = (or_timing){.key_interval_ms = 600000, .key_min_gap_ms = 800};
    or_set_timing(&t);
    start(fx);
    WAIT_FOR(stats().key_fetches == 1, 10000);
    for (int i = 0; i < 50; i++) {
        or_key_refresh("or");
        sleep_ms(10);
    }
    sleep_ms(1200);
    or_stats s = stats();
    assert_int_equal(s.key_fetches, 2);   /* the one at start, one for the burst */
    or_key_refresh("or");
    WAIT_FOR(stats().key_fetches == 3, 3000);
}

/* ---------------------------------------------------------------- enrichment */

/* A finished job whose meta the lookup merges into. */
static void finished_job(store *st, const char *path, int64_t gen)
{
    prompt_attrs a = {.mode = 0644};
    rf_err err;
    rf_err_clear(&err);
    if (sp_install(st, path, "hi", 2, 1, gen, PS_PENDING, &a, 1000, &err) < 0)
        fail_msg("sp_install: %s", err.msg);
    job_commit *c = job_commit_new();
    c->path = strdup(path);
    c->gen = gen;
    c->state = PS_DONE;
    c->finished_ms = 2000;
    c->out = strdup("answer");
    c->out_len = 6;
    c->meta = strdup("{\n  \"tier\": \"t\",\n  \"state\": \"done\"\n}\n");
    sl_submit(st, c);
    assert_int_equal(store_flush(st), 0);
}

static cJSON *meta_of(store *st, const char *path)
{
    char *data;
    size_t len;
    rf_err err;
    if (sp_read(st, path, SP_META, 0, &data, &len, &err) < 0)
        fail_msg("sp_read: %s", err.msg);
    cJSON *o = cJSON_Parse(data);
    free(data);
    return o;
}

static int g_listened;
static char g_listened_provider[600];

static void on_enriched(const char *provider, int64_t gen, const or_generation *g, void *ud)
{
    snprintf(g_listened_provider, sizeof g_listened_provider, "%s/%s", provider,
             g->provider_name);
    __atomic_add_fetch(&g_listened, 1, __ATOMIC_RELAXED);
}

static void test_enrich_merges_openrouter_view(void **state)
{
    fixture *fx = *state;
    sim_post("/control/behaviour", "{\"model\": \"bad/m0\", \"status\": 503, \"latency_ms\": 30,"
                                   " \"provider\": \"DownCo\"}");
    sim_post("/control/behaviour", "{\"model\": \"a/m1\", \"provider\": \"Prov-A\","
                                   " \"charge_usd\": 0.01, \"generation_delay_ms\": 200}");
    g_listened = 0;
    or_set_enriched_listener(on_enriched, NULL);
    start(fx);
    finished_job(fx->st, "t/p", 42);
    /* OpenRouter's server-side fallback: bad/m0 fails inside the request, a/m1 serves */
    char *id = chat("{\"model\": \"bad/m0\", \"models\": [\"bad/m0\", \"a/m1\"], \"messages\":"
                    " [{\"role\": \"user\", \"content\": \"hello\"}], \"service_tier\": \"flex\"}");
    or_enrich("or", id, 42);
    WAIT_FOR(stats().enriched == 1, 15000);
    cJSON *m = meta_of(fx->st, "t/p");
    assert_string_equal(cJSON_GetObjectItem(m, "tier")->valuestring, "t");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(m, "enriched")));
    cJSON *o = cJSON_GetObjectItem(m, "openrouter");
    assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring, id);
    assert_string_equal(cJSON_GetObjectItem(o, "provider_name")->valuestring, "Prov-A");
    assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, "a/m1");
    assert_string_equal(cJSON_GetObjectItem(o, "service_tier")->valuestring, "flex");
    assert_string_equal(cJSON_GetObjectItem(o, "finish_reason")->valuestring, "stop");
    assert_true(cJSON_GetObjectItem(o, "total_cost")->valuedouble == 0.01);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "native_tokens_prompt")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "latency")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "streamed")));
    cJSON *hops = cJSON_GetObjectItem(o, "provider_responses");
    assert_int_equal(cJSON_GetArraySize(hops), 2);
    cJSON *h0 = cJSON_GetArrayItem(hops, 0), *h1 = cJSON_GetArrayItem(hops, 1);
    assert_string_equal(cJSON_GetObjectItem(h0, "provider_name")->valuestring, "DownCo");
    assert_int_equal(cJSON_GetObjectItem(h0, "status")->valueint, 503);
    assert_true(cJSON_GetObjectItem(h0, "latency")->valuedouble >= 30);
    assert_string_equal(cJSON_GetObjectItem(h1, "provider_name")->valuestring, "Prov-A");
    assert_int_equal(cJSON_GetObjectItem(h1, "status")->valueint, 200);
    cJSON_Delete(m);
    WAIT_FOR(__atomic_load_n(&g_listened, __ATOMIC_RELAXED) == 1, 2000);
    assert_string_equal(g_listened_provider, "or/Prov-A");
    assert_int_equal(stats().pending, 0);
    free(id);
}

static void test_enrich_retry_schedule(void **state)
{
    fixture *fx = *state;
    /* the record appears 3 s after the answer: lookups at 0.5, 1.5 (404) and 3.5 s */
    sim_post("/control/behaviour", "{\"model\": \"a/m1\", \"generation_delay_ms\": 3000}");
    start(fx);
    finished_job(fx->st, "t/slow", 43);
    char *id = chat("{\"model\": \"a/m1\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}");
    int64_t t0 = now_mono_ms();
    or_enrich("or", id, 43);
    WAIT_FOR(stats().enriched == 1, 15000);
    int64_t took = now_mono_ms() - t0;
    or_stats s = stats();
    assert_int_equal(sim_endpoint_count("/api/v1/generation"), 3);
    assert_int_equal(s.generation_gets, 3);
    if (took < 3400 || took > 6000)
        fail_msg("enriched after %lld ms, expected about 3500", (long long)took);
    cJSON *m = meta_of(fx->st, "t/slow");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(m, "enriched")));
    cJSON_Delete(m);
    free(id);
}

static void test_enrich_gives_up(void **state)
{
    fixture *fx = *state;
    /* an id OpenRouter never knows: 404 each time until the deadline */
    or_timing t = {.gen_first_ms = 50, .gen_cap_ms = 200, .gen_deadline_ms = 1000};
    or_set_timing(&t);
    start(fx);
    finished_job(fx->st, "t/never", 44);
    or_enrich("or", "gen-unknown", 44);
    WAIT_FOR(stats().gave_up == 1, 5000);
    /* at 50, 150, 350, 550, 750, 950 ms; 1150 is past the deadline */
    int n = sim_endpoint_count("/api/v1/generation");
    if (n < 5 || n > 7)
        fail_msg("%d lookups before giving up", n);
    sleep_ms(400);
    assert_int_equal(sim_endpoint_count("/api/v1/generation"), n);
    cJSON *m = meta_of(fx->st, "t/never");
    assert_null(cJSON_GetObjectItem(m, "enriched"));
    cJSON_Delete(m);

    /* a generation whose job is gone: fetched, then nothing to merge into */
    char *id = chat("{\"model\": \"a/m1\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}");
    or_enrich("or", id, 4444);
    WAIT_FOR(stats().gave_up == 2, 8000);
    assert_int_equal(stats().enriched, 0);
    free(id);

    /* a provider that is not in the config: given up at once */
    or_enrich("nobody", "gen-1", 44);
    WAIT_FOR(stats().gave_up == 3, 3000);
}

static void test_queue_bound_and_shutdown(void **state)
{
    fixture *fx = *state;
    or_timing t = {.queue_max = 10};
    or_set_timing(&t);
    start(fx);
    for (int i = 0; i < 25; i++) {
        char id[32];
        snprintf(id, sizeof id, "gen-%d", i);
        or_enrich("or", id, 100 + i);
    }
    or_stats s = stats();
    assert_int_equal(s.pending, 10);
    assert_int_equal(s.dropped, 15);
    /* shutdown with lookups pending: at once, nothing leaks (valgrind) */
    int64_t t0 = now_mono_ms();
    or_stop();
    assert_true(now_mono_ms() - t0 < 1500);
    assert_int_equal(stats().pending, 0);
    or_enrich("or", "gen-late", 1);   /* after the stop: dropped quietly */
    assert_int_equal(stats().pending, 0);
    or_stop();                        /* twice is fine */
}

static void test_stop_aborts_hung_fetch(void **state)
{
    fixture *fx = *state;
    /* a server that accepts connections and never answers */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 8), 0);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    char base[96];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/api/v1", ntohs(a.sin_port));
    use_config(base);
    start(fx);
    sleep_ms(500);   /* the key fetch is in progress, waiting for an answer */
    or_stats st = stats();
    assert_int_equal(st.key_fetches, 1);
    int64_t t0 = now_mono_ms();
    or_stop();
    int64_t took = now_mono_ms() - t0;
    close(s);
    if (took > 2500)
        fail_msg("or_stop took %lld ms", (long long)took);
}

static void test_config_changes(void **state)
{
    fixture *fx = *state;
    char base[96];
    snprintf(base, sizeof base, "%s/api/v1", fx->url);
    use_config(NULL);   /* no OpenRouter provider: nothing is fetched */
    start(fx);
    sleep_ms(300);
    or_key_info k;
    assert_int_equal(or_key_snapshot("or", &k), 0);
    assert_int_equal(sim_endpoint_count("/api/v1/key") + sim_endpoint_count("/api/v1/models"), 0);
    char *json = or_key_json();
    assert_string_equal(json, "{}");
    free(json);

    use_config(base);
    or_config_changed();
    WAIT_FOR(or_key_snapshot("or", &k), 10000);
    WAIT_FOR(sim_endpoint_count("/api/v1/models") == 1, 10000);

    use_config(NULL);   /* gone again: not shown, not fetched */
    or_config_changed();
    WAIT_FOR(!or_key_snapshot("or", &k), 5000);
    int keys = sim_endpoint_count("/api/v1/key");
    or_key_refresh("or");
    sleep_ms(300);
    assert_int_equal(sim_endpoint_count("/api/v1/key"), keys);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_prices_fetched_and_kept),
        T(test_key_limits),
        T(test_key_cadence),
        T(test_enrich_merges_openrouter_view),
        T(test_enrich_retry_schedule),
        T(test_enrich_gives_up),
        T(test_queue_bound_and_shutdown),
        T(test_stop_aborts_hung_fetch),
        T(test_config_changes),
    };
    int rc = cmocka_run_group_tests_name("openrouter_sim", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
