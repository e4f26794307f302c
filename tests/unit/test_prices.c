/* test_prices.c — prices.c: where a hop's price comes from (a free provider, the config,
 * OpenRouter's published prices for OpenRouter-kind providers, the rate observed),
 * prices_observe raising rates and never lowering them, and the published and observed
 * prices kept in the state store and loaded back (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "budget.h"
#include "prices.h"
#include "store_test.h"

static rf_provider g_providers[] = {
    { .name = "or", .kind = RF_KIND_OPENROUTER },
    { .name = "oai", .kind = RF_KIND_OPENAI },
    { .name = "local", .kind = RF_KIND_OPENAI, .is_free = 1 },
};

static rf_price g_prices[] = {
    { .provider = NULL, .model = "m-conf", .prompt_per_m = 1, .completion_per_m = 2 },
    { .provider = "oai", .model = "m-pub", .prompt_per_m = 5, .completion_per_m = 6 },
    { .provider = NULL, .model = "m-zero", .prompt_per_m = 0, .completion_per_m = 0 },
    { .provider = "local", .model = "m-local", .prompt_per_m = 7, .completion_per_m = 7 },
};

static rf_config g_cfg = { .providers = g_providers, .providers_len = 3, .prices = g_prices,
                           .prices_len = 4, .daily_usd = -1, .monthly_usd = -1,
                           .refcount = 1 };

static const published_price g_published[] = {
    { "m-pub", 0.5, 1.5, 0.001 },
    { "m-conf", 9, 9, 0 },
    { "m-only-pub", 2, 3, 0 },
};

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    *state = fx;
    rf_err err;
    assert_int_equal(prices_init(NULL, &err), 0);
    return 0;
}

static int setup_store(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    tst_tempdir(fx->dir, sizeof fx->dir, "prices");
    fx->st = tst_open(fx->dir);
    rf_err err;
    assert_int_equal(prices_init(fx->st, &err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    prices_shutdown();
    store_fault_set(NULL);
    store_close(fx->st);
    if (fx->dir[0])
        tst_rmrf(fx->dir);
    free(fx);
    return 0;
}

/* The price of provider/model as "source prompt completion request", or "unpriced". */
static const char *price_of(const rf_config *cfg, const char *provider, const char *model)
{
    static char buf[128];
    hop_price p;
    memset(&p, 0, sizeof p);
    if (!prices_lookup(cfg, provider, model, &p))
        return "unpriced";
    snprintf(buf, sizeof buf, "%s %g %g %g", p.source, p.prompt_per_m, p.completion_per_m,
             p.request_usd);
    return buf;
}

static void publish(void)
{
    rf_err err;
    assert_int_equal(prices_set_published(g_published, 3, &err), 0);
}

/* ---- lookup order ---- */

static void test_lookup_order(void **state)
{
    (void)state;
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "unpriced");
    assert_string_equal(price_of(&g_cfg, "or", "m-conf"), "config 1 2 0");
    publish();
    /* configured beats published */
    assert_string_equal(price_of(&g_cfg, "or", "m-conf"), "config 1 2 0");
    assert_string_equal(price_of(&g_cfg, "oai", "m-pub"), "config 5 6 0");
    /* published, with its price per request, for OpenRouter-kind providers only */
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "openrouter 0.5 1.5 0.001");
    assert_string_equal(price_of(&g_cfg, "or", "m-only-pub"), "openrouter 2 3 0");
    assert_string_equal(price_of(&g_cfg, "oai", "m-only-pub"), "unpriced");
    assert_string_equal(price_of(&g_cfg, "nobody", "m-only-pub"), "unpriced");
    assert_string_equal(price_of(NULL, "or", "m-pub"), "unpriced");   /* no config: no kind */
    /* a zero price is a known free price; a free provider's models all cost nothing */
    assert_string_equal(price_of(&g_cfg, "or", "m-zero"), "config 0 0 0");
    assert_string_equal(price_of(&g_cfg, "local", "anything"), "free 0 0 0");
    assert_string_equal(price_of(&g_cfg, "local", "m-local"), "free 0 0 0");
    /* published beats observed (when the observed rate is not above it) */
    assert_int_equal(prices_observe("or", "m-pub", 0.0001, 1000, 1000, 0, 0), 1);  /* 0.05/M */
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "openrouter 0.5 1.5 0.001");
    /* observed, when nothing else is known */
    assert_string_equal(price_of(&g_cfg, "oai", "m-x"), "unpriced");
    assert_int_equal(prices_observe("oai", "m-x", 0.01, 1000, 1000, 0, 0), 1);     /* 5/M */
    assert_string_equal(price_of(&g_cfg, "oai", "m-x"), "observed 5 5 0");
    assert_string_equal(price_of(&g_cfg, "or", "m-x"), "unpriced");   /* per provider */
    assert_string_equal(price_of(NULL, "oai", "m-x"), "observed 5 5 0");
}

/* A provider that charged more than the configured or published price allows raises it:
 * later reservations bound what it really costs. */
static void test_observed_raises_configured_and_published(void **state)
{
    (void)state;
    publish();
    /* m-conf is configured at 1/M and 2/M; the provider charged $0.003 for 1000 tokens */
    assert_int_equal(prices_observe("or", "m-conf", 0.003, 500, 500, 0, 0), 1);
    assert_string_equal(price_of(&g_cfg, "or", "m-conf"), "observed 3 3 0");
    hop_price p;
    assert_int_equal(prices_lookup(&g_cfg, "or", "m-conf", &p), 1);
    assert_true(budget_worst_case(&p, 0, 1000) >= 0.003);
    /* only that provider's hop */
    assert_string_equal(price_of(&g_cfg, "oai", "m-conf"), "config 1 2 0");
    /* a published price: each part is raised to at least the observed rate */
    assert_int_equal(prices_observe("or", "m-pub", 0.002, 1000, 1000, 0, 0), 1);   /* 1/M */
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "observed 1 1.5 0.001");
    /* a free provider stays free */
    assert_int_equal(prices_observe("local", "m-local", 1, 10, 10, 0, 0), 1);
    assert_string_equal(price_of(&g_cfg, "local", "m-local"), "free 0 0 0");
}

static void test_observe_never_lowers(void **state)
{
    (void)state;
    assert_int_equal(prices_observe("oai", "m", 0.01, 1000, 1000, 0, 0), 1);   /* 5/M */
    assert_string_equal(price_of(&g_cfg, "oai", "m"), "observed 5 5 0");
    assert_int_equal(prices_observe("oai", "m", 0.002, 1000, 1000, 0, 0), 0);  /* 1/M */
    assert_int_equal(prices_observe("oai", "m", 0.01, 1000, 1000, 0, 0), 0);   /* the same */
    assert_string_equal(price_of(&g_cfg, "oai", "m"), "observed 5 5 0");
    assert_int_equal(prices_observe("oai", "m", 0.02, 1000, 1000, 0, 0), 1);   /* 10/M */
    assert_string_equal(price_of(&g_cfg, "oai", "m"), "observed 10 10 0");
    /* not a cost: nothing learnt */
    assert_int_equal(prices_observe("oai", "m", NAN, 1, 1, 0, 0), 0);
    assert_int_equal(prices_observe("oai", "m", INFINITY, 1, 1, 0, 0), 0);
    assert_int_equal(prices_observe("oai", "m", -1, 1, 1, 0, 0), 0);
    assert_int_equal(prices_observe("oai", "m", 0, 1, 1, 0, 0), 0);
    assert_string_equal(price_of(&g_cfg, "oai", "m"), "observed 10 10 0");
    /* no usage: the worst case's tokens (300 bytes / 3 + 16 = 116, and max_tokens 884) */
    assert_int_equal(prices_observe("oai", "n", 0.01, -1, -1, 300, 884), 1);
    assert_string_equal(price_of(&g_cfg, "oai", "n"), "observed 10 10 0");
    hop_price p;
    assert_int_equal(prices_lookup(&g_cfg, "oai", "n", &p), 1);
    assert_true(budget_worst_case(&p, 300, 884) >= 0.01 - 1e-12);
    /* no tokens at all: at least one */
    assert_int_equal(prices_observe("oai", "z", 0.000002, 0, 0, 0, 0), 1);
    assert_string_equal(price_of(&g_cfg, "oai", "z"), "observed 2 2 0");
}

/* ---- the store ---- */

static void test_published_replaced(void **state)
{
    (void)state;
    int64_t at = -1;
    assert_int_equal(prices_published_count(&at), 0);
    assert_int_equal(at, 0);
    int64_t before = tst_wall_ms();
    publish();
    assert_int_equal(prices_published_count(&at), 3);
    assert_true(at >= before && at <= tst_wall_ms());
    static const published_price next[] = {{"m-new", 4, 4, 0}};
    rf_err err;
    assert_int_equal(prices_set_published(next, 1, &err), 0);
    assert_int_equal(prices_published_count(NULL), 1);
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "unpriced");
    assert_string_equal(price_of(&g_cfg, "or", "m-new"), "openrouter 4 4 0");
}

static void reload(fixture *fx)
{
    prices_shutdown();
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "unpriced");   /* really forgotten */
    rf_err err;
    assert_int_equal(prices_init(fx->st, &err), 0);
}

static void test_persisted_and_loaded(void **state)
{
    fixture *fx = *state;
    publish();
    int64_t at = 0;
    prices_published_count(&at);
    assert_int_equal(prices_observe("oai", "m-x", 0.01, 1000, 1000, 0, 0), 1);
    assert_int_equal(prices_observe("or", "m-conf", 0.003, 500, 500, 0, 0), 1);
    assert_int_equal(prices_observe("oai", "m-x", 0.001, 1000, 1000, 0, 0), 0);  /* lower */
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM prices WHERE source = "
                                           "'observed'", -1), 2);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM prices WHERE source = "
                                           "'openrouter'", -1), 3);
    reload(fx);
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "openrouter 0.5 1.5 0.001");
    assert_string_equal(price_of(&g_cfg, "oai", "m-x"), "observed 5 5 0");
    assert_string_equal(price_of(&g_cfg, "or", "m-conf"), "observed 3 3 0");
    int64_t loaded_at = 0;
    assert_int_equal(prices_published_count(&loaded_at), 3);
    assert_int_equal(loaded_at, at);
    /* a whole remount: the store keeps them */
    prices_shutdown();
    store_close(fx->st);
    fx->st = tst_open(fx->dir);
    rf_err err;
    assert_int_equal(prices_init(fx->st, &err), 0);
    assert_string_equal(price_of(&g_cfg, "oai", "m-x"), "observed 5 5 0");
    /* a raise after the reload is kept too, and still never lowers */
    assert_int_equal(prices_observe("oai", "m-x", 0.004, 500, 500, 0, 0), 0);
    assert_int_equal(prices_observe("oai", "m-x", 0.04, 1000, 1000, 0, 0), 1);
    assert_int_equal(store_flush(fx->st), 0);
    reload(fx);
    assert_string_equal(price_of(&g_cfg, "oai", "m-x"), "observed 20 20 0");
    /* replacing the published prices replaces them in the store */
    static const published_price next[] = {{"m-new", 4, 4, 0}};
    assert_int_equal(prices_set_published(next, 1, &err), 0);
    reload(fx);
    assert_int_equal(prices_published_count(NULL), 1);
    assert_string_equal(price_of(&g_cfg, "or", "m-new"), "openrouter 4 4 0");
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "unpriced");
}

/* The store fails: new published prices are refused and the old ones kept; an observed
 * rate is held in memory and reaches the store once it works again. */
static void test_store_failing(void **state)
{
    fixture *fx = *state;
    publish();
    rf_err err;
    rf_err_clear(&err);
    store_fault_set("full");
    static const published_price next[] = {{"m-new", 4, 4, 0}};
    assert_int_equal(prices_set_published(next, 1, &err), -1);
    assert_int_equal(err.code, ENOSPC);
    assert_int_equal(prices_published_count(NULL), 3);
    assert_string_equal(price_of(&g_cfg, "or", "m-pub"), "openrouter 0.5 1.5 0.001");
    assert_string_equal(price_of(&g_cfg, "or", "m-new"), "unpriced");
    assert_int_equal(prices_observe("oai", "m-x", 0.01, 1000, 1000, 0, 0), 1);
    assert_string_equal(price_of(&g_cfg, "oai", "m-x"), "observed 5 5 0");
    store_fault_set(NULL);
    WAIT_UNTIL(store_admit(fx->st) == 0 && store_flush(fx->st) == 0, 20000);
    assert_int_equal(store_flush(fx->st), 0);
    reload(fx);
    assert_string_equal(price_of(&g_cfg, "oai", "m-x"), "observed 5 5 0");
    assert_int_equal(prices_published_count(NULL), 3);
}

typedef struct each_seen {
    int n;
    char text[16][96];
} each_seen;

static void each_fn(const char *provider, const char *model, const hop_price *p, void *ud)
{
    each_seen *e = ud;
    if (e->n < 16)
        snprintf(e->text[e->n], sizeof e->text[e->n], "%s %s %s %g", provider ? provider : "-",
                 model, p->source, p->prompt_per_m);
    e->n++;
}

static int seen(const each_seen *e, const char *text)
{
    for (int i = 0; i < e->n && i < 16; i++)
        if (!strcmp(e->text[i], text))
            return 1;
    return 0;
}

static void test_each(void **state)
{
    (void)state;
    publish();
    assert_int_equal(prices_observe("oai", "m-x", 0.01, 1000, 1000, 0, 0), 1);
    each_seen e = {0};
    prices_each(&g_cfg, each_fn, &e);
    assert_int_equal(e.n, 4 + 3 + 1);
    assert_true(seen(&e, "- m-conf config 1"));
    assert_true(seen(&e, "oai m-pub config 5"));
    assert_true(seen(&e, "- m-only-pub openrouter 2"));
    assert_true(seen(&e, "oai m-x observed 5"));
    memset(&e, 0, sizeof e);
    prices_each(NULL, each_fn, &e);
    assert_int_equal(e.n, 3 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observed_raises_configured_and_published, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_observe_never_lowers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persisted_and_loaded, setup_store, teardown),
        cmocka_unit_test_setup_teardown(test_store_failing, setup_store, teardown),
        cmocka_unit_test_setup_teardown(test_each, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
