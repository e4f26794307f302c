/* test_shared_reply.c — shared_reply.c: the parsers of every Redis reply the shared-state
 * module reads, on RESP bytes turned into replies by hiredis's reader (as on the
 * connection), and the key-component escaping (cmocka, no Redis needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "shared_reply.h"

/* The first reply in the RESP text (owned: freeReplyObject). */
static redisReply *reply_of(const char *resp, size_t len)
{
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    assert_int_equal(redisReaderFeed(r, resp, len), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(r);
    return reply;
}

#define REPLY(lit) reply_of(lit, sizeof lit - 1)

static void test_escape(void **state)
{
    (void)state;
    char out[64], back[64];
    assert_int_equal(shreply_escape("openrouter", 10, out, sizeof out), 10);
    assert_string_equal(out, "openrouter");
    assert_int_equal(shreply_escape("a:b|c d%", 8, out, sizeof out), 16);
    assert_string_equal(out, "a%3Ab%7Cc%20d%25");
    assert_int_equal(shreply_unescape(out, strlen(out), back, sizeof back), 8);
    assert_string_equal(back, "a:b|c d%");
    assert_int_equal(shreply_escape("meta-llama/llama-3.1_8b@x+y=z", 29, out, sizeof out), 29);
    assert_int_equal(shreply_escape("\xc3\xbc", 2, out, sizeof out), 6);
    assert_string_equal(out, "%C3%BC");
    assert_int_equal(shreply_unescape("%c3%bc", 6, back, sizeof back), 2);
    /* too small: nothing half-written */
    assert_int_equal(shreply_escape("abc", 3, out, 3), -1);
    assert_string_equal(out, "");
    assert_int_equal(shreply_escape("a:", 2, out, 4), -1);
    assert_int_equal(shreply_escape("a:", 2, out, 5), 4);
    /* bad escapes, NUL, bytes that must have been escaped */
    assert_int_equal(shreply_unescape("%4", 2, back, sizeof back), -1);
    assert_int_equal(shreply_unescape("%zz", 3, back, sizeof back), -1);
    assert_int_equal(shreply_unescape("%00", 3, back, sizeof back), -1);
    assert_int_equal(shreply_unescape("a:b", 3, back, sizeof back), -1);
    assert_int_equal(shreply_unescape("a b", 3, back, sizeof back), -1);
    assert_int_equal(shreply_unescape("abcd", 4, back, 4), -1);
    assert_int_equal(shreply_unescape("abc", 3, back, 4), 3);
}

static void test_budget(void **state)
{
    (void)state;
    shreply_budget b;
    rf_err err;
    redisReply *r = REPLY("*9\r\n:2\r\n:2\r\n:1764620000000\r\n:1\r\n:2\r\n:3\r\n"
                          ":4970000000\r\n:20000000\r\n:0\r\n");
    assert_int_equal(shreply_budget_parse(r, "reserve", 2, 2, &b, &err), 0);
    assert_int_equal(b.code, 2);
    assert_int_equal(b.idx, 2);
    assert_int_equal(b.now_ms, 1764620000000LL);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.w[0].spent, 1);
    assert_int_equal(b.w[0].reserved, 2);
    assert_int_equal(b.w[0].host, 3);
    assert_int_equal(b.w[1].spent, 4970000000LL);
    assert_int_equal(b.w[1].reserved, 20000000);
    /* wrong window count, code out of range, idx for a settle */
    assert_int_equal(shreply_budget_parse(r, "reserve", 1, 2, &b, &err), -1);
    assert_int_equal(err.code, EIO);
    assert_string_equal(err.msg, "unexpected reply to reserve from Redis: not an array of "
                                 "the expected length");
    assert_int_equal(b.n, 0);
    assert_int_equal(shreply_budget_parse(r, "settle", 2, 1, &b, &err), -1);
    assert_int_equal(shreply_budget_parse(r, "x", 0, 2, &b, &err), -1);
    freeReplyObject(r);

    r = REPLY("*6\r\n:0\r\n:1\r\n:5\r\n:1\r\n:2\r\n:3\r\n");      /* ok with a window named */
    assert_int_equal(shreply_budget_parse(r, "reserve", 1, 2, &b, &err), -1);
    freeReplyObject(r);
    r = REPLY("*6\r\n:0\r\n:0\r\n:5\r\n:1\r\n:-2\r\n:3\r\n");     /* reserved < 0 reads 0 */
    assert_int_equal(shreply_budget_parse(r, "release", 1, 0, &b, &err), 0);
    assert_int_equal(b.w[0].reserved, 0);
    freeReplyObject(r);
    r = REPLY("*6\r\n:0\r\n:0\r\n:5\r\n:9007199254740992\r\n:0\r\n:3\r\n");
    assert_int_equal(shreply_budget_parse(r, "release", 1, 0, &b, &err), -1);
    assert_int_equal(b.n, 0);
    freeReplyObject(r);
    r = REPLY("*6\r\n$1\r\n0\r\n:0\r\n:5\r\n:1\r\n:0\r\n:3\r\n");  /* a string, not a number */
    assert_int_equal(shreply_budget_parse(r, "release", 1, 0, &b, &err), -1);
    freeReplyObject(r);
    r = REPLY("-ERR x\r\n");
    assert_int_equal(shreply_budget_parse(r, "release", 1, 0, &b, NULL), -1);
    freeReplyObject(r);
}

static void test_limits(void **state)
{
    (void)state;
    rf_err err;
    int64_t w, s;
    redisReply *r = REPLY("*2\r\n:149500000\r\n:1764620149500000\r\n");
    assert_int_equal(shreply_rate_parse(r, &w, &s, &err), 0);
    assert_int_equal(w, 149500000);
    assert_int_equal(s, 1764620149500000LL);
    freeReplyObject(r);
    r = REPLY("*2\r\n:-1\r\n:5\r\n");
    assert_int_equal(shreply_rate_parse(r, &w, &s, &err), -1);
    freeReplyObject(r);

    int g;
    long count, retry;
    r = REPLY("*3\r\n:0\r\n:3\r\n:59990\r\n");
    assert_int_equal(shreply_slot_parse(r, &g, &count, &retry, &err), 0);
    assert_int_equal(g, 0);
    assert_int_equal(count, 3);
    assert_int_equal(retry, 59990);
    freeReplyObject(r);
    r = REPLY("*3\r\n:2\r\n:3\r\n:0\r\n");
    assert_int_equal(shreply_slot_parse(r, &g, &count, &retry, &err), -1);
    freeReplyObject(r);

    r = REPLY("+OK\r\n");
    assert_int_equal(shreply_set_nx_parse(r, &g, &err), 0);
    assert_int_equal(g, 1);
    assert_int_equal(shreply_status_parse(r, "OK", &err), 0);
    assert_int_equal(shreply_status_parse(r, "PONG", &err), -1);
    freeReplyObject(r);
    r = REPLY("$-1\r\n");
    assert_int_equal(shreply_set_nx_parse(r, &g, &err), 0);
    assert_int_equal(g, 0);
    freeReplyObject(r);
    r = REPLY("$2\r\nOK\r\n");                    /* a bulk "OK" is not the status */
    assert_int_equal(shreply_set_nx_parse(r, &g, &err), -1);
    freeReplyObject(r);
}

static void test_breaker_entries(void **state)
{
    (void)state;
    shreply_breaker b;
    memset(&b, 0, sizeof b);
    assert_int_equal(shreply_breaker_field("or%3A1:meta/llama%3Afree", 24, &b), 0);
    assert_string_equal(b.provider, "or:1");
    assert_string_equal(b.model, "meta/llama:free");
    assert_int_equal(shreply_breaker_field("p", 1, &b), 0);
    assert_string_equal(b.model, "");
    assert_int_equal(shreply_breaker_field("", 0, &b), -1);
    assert_int_equal(shreply_breaker_field(":m", 2, &b), -1);
    assert_int_equal(shreply_breaker_field("p:", 2, &b), -1);
    assert_int_equal(shreply_breaker_field("p:a:b", 5, &b), -1);   /* a raw ':' in a name */

    const char *v = "1|1764620005000|1764620000000|host-a|HTTP 503|x\x01y";
    assert_int_equal(shreply_breaker_value(v, strlen(v), &b), 0);
    assert_int_equal(b.until_ms, 1764620005000LL);
    assert_int_equal(b.at_ms, 1764620000000LL);
    assert_string_equal(b.host, "host-a");
    assert_string_equal(b.reason, "HTTP 503|x y");
    const char *bad[] = {"0|1|1|h|r", "1|1|1|h", "1||1|h|r", "1|1|1||r", "1|1|1|h h|r",
                         "1|-1|1|h|r", "1|99999999999999999999|1|h|r", "1|1|1|h\x01|r", "1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(shreply_breaker_value(bad[i], strlen(bad[i]), &b), -1);
}

static void test_sync(void **state)
{
    (void)state;
    static const char resp[] =
        "*3\r\n:1764620000000\r\n"
        "*6\r\n$4\r\nor%1\r\n$15\r\n1|5|6|host-a|r1\r\n"        /* bad escape: skipped */
        "$7\r\nor:m%3A\r\n$15\r\n1|7|8|host-b|r2\r\n"
        "$1\r\np\r\n$7\r\ngarbage\r\n"                          /* bad value: skipped */
        "*3\r\n:1\r\n:2\r\n:3\r\n";
    redisReply *r = reply_of(resp, sizeof resp - 1);
    shreply_sync y;
    rf_err err;
    assert_int_equal(shreply_sync_parse(r, 1, &y, &err), 0);
    assert_int_equal(y.now_ms, 1764620000000LL);
    assert_int_equal(y.nbreakers, 1);
    assert_int_equal(y.skipped, 2);
    assert_string_equal(y.breakers[0].provider, "or");
    assert_string_equal(y.breakers[0].model, "m:");
    assert_int_equal(y.breakers[0].until_ms, 7);
    assert_string_equal(y.breakers[0].host, "host-b");
    assert_int_equal(y.n, 1);
    assert_int_equal(y.w[0].host, 3);
    shreply_sync_free(&y);
    assert_null(y.breakers);
    assert_int_equal(shreply_sync_parse(r, 2, &y, &err), -1);    /* totals of 1 window */
    assert_null(y.breakers);
    freeReplyObject(r);
    r = REPLY("*3\r\n:1\r\n*1\r\n$1\r\na\r\n*0\r\n");            /* odd field/value list */
    assert_int_equal(shreply_sync_parse(r, 0, &y, &err), -1);
    freeReplyObject(r);
}

static void test_connection_replies(void **state)
{
    (void)state;
    rf_err err;
    int64_t ms;
    redisReply *r = REPLY("*2\r\n$10\r\n1764620000\r\n$6\r\n123456\r\n");
    assert_int_equal(shreply_time_parse(r, &ms, &err), 0);
    assert_int_equal(ms, 1764620000123LL);
    freeReplyObject(r);
    r = REPLY("*2\r\n$10\r\n1764620000\r\n$7\r\n1000000\r\n");
    assert_int_equal(shreply_time_parse(r, &ms, &err), -1);
    freeReplyObject(r);

    char sha[41];
    r = REPLY("$40\r\n0123456789ABCDEF0123456789abcdef01234567\r\n");
    assert_int_equal(shreply_sha_parse(r, sha, &err), 0);
    assert_string_equal(sha, "0123456789abcdef0123456789abcdef01234567");
    freeReplyObject(r);

    char text[32];
    r = REPLY("-NOSCRIPT No matching script. Please use EVAL.\r\n");
    assert_true(shreply_is_noscript(r));
    assert_int_equal(shreply_error_text(r, text, sizeof text), 1);
    assert_string_equal(text, "NOSCRIPT No matching script. Pl");   /* cut to fit */
    assert_int_equal(shreply_status_parse(r, "OK", &err), -1);
    assert_string_equal(err.msg, "NOSCRIPT No matching script. Please use EVAL.");
    freeReplyObject(r);
    r = REPLY("+OK\r\n");
    assert_false(shreply_is_noscript(r));
    assert_int_equal(shreply_error_text(r, text, sizeof text), 0);
    assert_string_equal(text, "");
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_breaker_entries),
        cmocka_unit_test(test_sync),
        cmocka_unit_test(test_connection_replies),
    };
    return cmocka_run_group_tests_name("shared_reply", tests, NULL, NULL);
}
