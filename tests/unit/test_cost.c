/* test_cost.c — cost.c: what an attempt is billed, one test per rule of cost.h (a reported
 * cost, an absurd one, one that is not a number, tokens x price, no usage, unpriced) and
 * for streams cut short (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "cost.h"

static const hop_price PRICE = { .prompt_per_m = 3, .completion_per_m = 15,
                                 .request_usd = 0.001, .source = "config" };
static const hop_price FREE = { .source = "free" };

static openai_completion reported(double cost)
{
    return (openai_completion){ .prompt_tokens = 1000, .completion_tokens = 500,
                                .cost = cost, .has_cost = 1 };
}

static openai_completion tokens_only(long prompt, long completion)
{
    return (openai_completion){ .prompt_tokens = prompt, .completion_tokens = completion };
}

/* nano-USD of an exact decimal amount */
#define NUSD(usd) ((int64_t)llround((usd) * 1e9))

static void expect(const cost_result *c, int has_cost, int64_t nusd, int estimated, int over,
                   int nonsense, const char *note_part)
{
    if (c->has_cost != has_cost || c->nusd != nusd || c->estimated != estimated ||
        c->over_reservation != over || c->nonsense != nonsense)
        fail_msg("got has_cost %d nusd %lld estimated %d over %d nonsense %d (note \"%s\"); "
                 "want %d %lld %d %d %d", c->has_cost, (long long)c->nusd, c->estimated,
                 c->over_reservation, c->nonsense, c->note, has_cost, (long long)nusd,
                 estimated, over, nonsense);
    if (!note_part)
        assert_string_equal(c->note, "");
    else if (!strstr(c->note, note_part))
        fail_msg("note \"%s\" lacks \"%s\"", c->note, note_part);
}

static void test_reported_cost(void **state)
{
    (void)state;
    cost_result c;
    openai_completion comp = reported(0.0042);
    cost_of_answer(&comp, &PRICE, 0.01, 300, &c);
    expect(&c, 1, NUSD(0.0042), 0, 0, 0, NULL);    /* the report beats tokens x price */
    comp = reported(0);
    cost_of_answer(&comp, &PRICE, 0.01, 300, &c);
    expect(&c, 1, 0, 0, 0, 0, NULL);               /* free is a cost */
    /* more than the worst case (a configured price too low): billed, and said so */
    comp = reported(0.02);
    cost_of_answer(&comp, &PRICE, 0.01, 300, &c);
    expect(&c, 1, NUSD(0.02), 0, 1, 0, NULL);
    /* no price known, but the provider says what it cost */
    comp = reported(0.003);
    cost_of_answer(&comp, NULL, 0, 300, &c);
    expect(&c, 1, NUSD(0.003), 0, 0, 0, NULL);
    /* large, but not absurd: under COST_ABSURD_FACTOR x the worst case ... */
    comp = reported(250);
    cost_of_answer(&comp, &PRICE, 0.25, 300, &c);
    expect(&c, 1, NUSD(250), 0, 1, 0, NULL);
    /* ... or not above COST_ABSURD_MIN_USD */
    comp = reported(COST_ABSURD_MIN_USD);
    cost_of_answer(&comp, &PRICE, 0.0001, 300, &c);
    expect(&c, 1, NUSD(COST_ABSURD_MIN_USD), 0, 1, 0, NULL);
}

static void test_absurd_cost(void **state)
{
    (void)state;
    cost_result c;
    openai_completion comp = reported(250.5);          /* > 1000 x $0.25 and > $100 */
    cost_of_answer(&comp, &PRICE, 0.25, 300, &c);
    expect(&c, 1, NUSD(0.25), 1, 0, 1, "absurd");      /* the worst case instead */
    assert_non_null(strstr(c.note, "250.5"));
    comp = reported(1e300);
    cost_of_answer(&comp, &PRICE, 0.25, 300, &c);
    expect(&c, 1, NUSD(0.25), 1, 0, 1, "billed the worst case");
    /* no price: nothing sensible to bill, counted as unpriced */
    comp = reported(5000);
    cost_of_answer(&comp, NULL, 0, 300, &c);
    expect(&c, 0, 0, 0, 0, 1, "no price is known");
    /* a known free model reporting a fortune: its worst case, $0 */
    comp = reported(500);
    cost_of_answer(&comp, &FREE, 0, 300, &c);
    expect(&c, 1, 0, 1, 0, 1, "absurd");
}

static void test_cost_not_a_number(void **state)
{
    (void)state;
    cost_result c;
    openai_completion comp = tokens_only(1000, 500);
    comp.cost_invalid = 1;                             /* "cost": "lots", NaN, -1, ... */
    cost_of_answer(&comp, &PRICE, 0.02, 300, &c);
    expect(&c, 1, NUSD(0.02), 1, 0, 1, "not a number");
    cost_of_answer(&comp, NULL, 0, 300, &c);
    expect(&c, 0, 0, 0, 0, 1, "not a number");
    /* a value that slipped through as a cost is judged the same way */
    static const double bad[] = {-0.5, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        comp = reported(bad[i]);
        cost_of_answer(&comp, &PRICE, 0.02, 300, &c);
        expect(&c, 1, NUSD(0.02), 1, 0, 1, "billed the worst case");
    }
}

static void test_tokens_times_price(void **state)
{
    (void)state;
    cost_result c;
    openai_completion comp = tokens_only(1000, 500);
    /* (1000 x 3 + 500 x 15) / 1e6 + 0.001 per request */
    cost_of_answer(&comp, &PRICE, 0.5, 300, &c);
    expect(&c, 1, NUSD(0.0115), 0, 0, 0, NULL);
    comp = tokens_only(0, 0);
    cost_of_answer(&comp, &PRICE, 0.5, 300, &c);
    expect(&c, 1, NUSD(0.001), 0, 0, 0, NULL);
    cost_of_answer(&comp, &FREE, 0, 300, &c);
    expect(&c, 1, 0, 0, 0, 0, NULL);
}

static void test_no_usage(void **state)
{
    (void)state;
    cost_result c;
    openai_completion comp = tokens_only(-1, -1);
    cost_of_answer(&comp, &PRICE, 0.0187, 300, &c);
    expect(&c, 1, NUSD(0.0187), 1, 0, 0, "no usage reported");
    /* half a usage is no usage: the worst case too */
    comp = tokens_only(1000, -1);
    cost_of_answer(&comp, &PRICE, 0.0187, 300, &c);
    expect(&c, 1, NUSD(0.0187), 1, 0, 0, "no usage reported");
    comp = tokens_only(-1, 500);
    cost_of_answer(&comp, &PRICE, 0.0187, 300, &c);
    expect(&c, 1, NUSD(0.0187), 1, 0, 0, "no usage reported");
}

static void test_unpriced(void **state)
{
    (void)state;
    cost_result c;
    memset(&c, 0x5a, sizeof c);                        /* every field is set */
    openai_completion comp = tokens_only(1000, 500);
    cost_of_answer(&comp, NULL, 0, 300, &c);
    expect(&c, 0, 0, 0, 0, 0, NULL);
    comp = tokens_only(-1, -1);
    cost_of_answer(&comp, NULL, 0, 300, &c);
    expect(&c, 0, 0, 0, 0, 0, NULL);
}

static void test_partial_stream(void **state)
{
    (void)state;
    cost_result c;
    /* the prompt's worst-case tokens (300 / 3 + 16 = 116) and the 50 received:
     * (116 x 3 + 50 x 15) / 1e6 + 0.001 */
    cost_of_partial(50, &PRICE, 300, &c);
    expect(&c, 1, NUSD(0.002098), 1, 0, 0, "after 50 tokens: estimated");
    cost_of_partial(1, &PRICE, 300, &c);
    expect(&c, 1, NUSD(0.001363), 1, 0, 0, "after 1 token: estimated");
    cost_of_partial(0, &PRICE, 0, &c);                 /* sent, nothing came back */
    expect(&c, 1, NUSD(0.001048), 1, 0, 0, "after 0 tokens");
    cost_of_partial(50, &FREE, 300, &c);
    expect(&c, 1, 0, 1, 0, 0, "estimated");
    memset(&c, 0x5a, sizeof c);
    cost_of_partial(50, NULL, 300, &c);
    expect(&c, 0, 0, 0, 0, 0, NULL);
    cost_of_partial(-1, &PRICE, 300, &c);
    expect(&c, 0, 0, 0, 0, 0, NULL);
}

static void test_conversions(void **state)
{
    (void)state;
    assert_int_equal(cost_usd_to_nusd(1.5), 1500000000);
    assert_int_equal(cost_usd_to_nusd(0.000000001), 1);
    assert_int_equal(cost_usd_to_nusd(0.0000000004), 0);      /* rounded */
    assert_int_equal(cost_usd_to_nusd(0), 0);
    assert_int_equal(cost_usd_to_nusd(-3), 0);
    assert_int_equal(cost_usd_to_nusd(NAN), 0);
    assert_int_equal(cost_usd_to_nusd(INFINITY), 0);
    assert_int_equal(cost_usd_to_nusd(1e12), 1000000000000000000LL);   /* clamped at $1e9 */
    assert_true(cost_nusd_to_usd(1500000000) == 1.5);
    assert_true(cost_nusd_to_usd(0) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reported_cost),
        cmocka_unit_test(test_absurd_cost),
        cmocka_unit_test(test_cost_not_a_number),
        cmocka_unit_test(test_tokens_times_price),
        cmocka_unit_test(test_no_usage),
        cmocka_unit_test(test_unpriced),
        cmocka_unit_test(test_partial_stream),
        cmocka_unit_test(test_conversions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
