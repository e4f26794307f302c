/* test_stream.c — the incremental SSE chat-completion parser (src/stream.c), cmocka:
 * reference streams (also fed byte by byte and in every 2-way split: the same result as
 * one feed), failures and what follows them, progress, live text, metadata, limits.
 * The tables of cases are in test_stream_cases.c; helpers in stream_test.h.  Streams are
 * written with ` for " (bq() converts). */
#include "stream_test.h"

/* ---- reference streams ---- */

/* OpenRouter-like: keep-alive comments, a role chunk, content with 2-, 3- and 4-byte
 * characters, reasoning, usage with cost in a final chunk with empty choices, [DONE]. */
static const char reference_openrouter[] =
    ": OPENROUTER PROCESSING\n\n"
    ": OPENROUTER PROCESSING\n\n"
    "data: " CHUNK("{`role`:`assistant`,`content`:``}", "null") "\n\n"
    "data: " CHUNK("{`role`:`assistant`,`reasoning`:`Thinking.`,`content`:null}", "null") "\n\n"
    "data: " CHUNK("{`content`:`Caf\xC3\xA9 `}", "null") "\n\n"
    "data: " CHUNK("{`content`:`\xE2\x82\xAC 5 \xF0\x9F\x90\x88`}", "null") "\n\n"
    "data: " CHUNK("{`content`:`.`}", "`stop`") "\n\n"
    "data: {`id`:`gen-1`,`provider`:`Anthropic`,`model`:`anthropic/claude-3.5-sonnet`,"
    "`choices`:[],`usage`:{`prompt_tokens`:14,`completion_tokens`:6,`total_tokens`:20,"
    "`cost`:0.000102}}\n\n"
    "data: [DONE]\n\n";

/* OpenAI-like with CRLF and CR line ends, id/event/retry fields, a multi-line data event,
 * service_tier and usage: null in each chunk until the final one. */
static const char reference_openai[] =
    "retry: 3000\r\n"
    "id: 1\r\n"
    "event: message\r\n"
    "data: {`id`:`chatcmpl-1`,`object`:`chat.completion.chunk`,`model`:`gpt-4o-2024-08-06`,"
    "`service_tier`:`default`,`choices`:[{`index`:0,`delta`:{`role`:`assistant`,"
    "`content`:``,`refusal`:null},`logprobs`:null,`finish_reason`:null}],`usage`:null}\r\n"
    "\r\n"
    "data: {`id`:`chatcmpl-1`,`model`:`gpt-4o-2024-08-06`,`choices`:[{`index`:0,\r"
    "data: `delta`:{`content`:`\xCE\xB1\xCE\xB2`},`finish_reason`:null}],`usage`:null}\r"
    "\r"
    "data:{`id`:`chatcmpl-1`,`model`:`gpt-4o-2024-08-06`,`choices`:[{`index`:0,"
    "`delta`:{`content`:` and \xE6\x97\xA5`},`finish_reason`:null}],`usage`:null}\n\r\n"
    "data: {`id`:`chatcmpl-1`,`choices`:[{`index`:0,\r\n"
    "data: `delta`:{`content`:`!`}}]}\r\n\r\n"
    "data: {`id`:`chatcmpl-1`,`model`:`gpt-4o-2024-08-06`,`choices`:[{`index`:0,"
    "`delta`:{},`finish_reason`:`length`}],`usage`:null}\r\n\r\n"
    "data: {`id`:`chatcmpl-1`,`model`:`gpt-4o-2024-08-06`,`service_tier`:`default`,"
    "`choices`:[],`usage`:{`prompt_tokens`:9,`completion_tokens`:3,`total_tokens`:12}}\r\n\r\n"
    "data: [DONE]\r\n\r\n";

/* Tool calls streamed in pieces, two in parallel. */
static const char reference_tools[] =
    "data: {`id`:`c`,`model`:`gpt-4o`,`choices`:[{`index`:0,`delta`:{`role`:`assistant`,"
    "`content`:null,`tool_calls`:[{`index`:0,`id`:`call_a`,`type`:`function`,"
    "`function`:{`name`:`get_weather`,`arguments`:``}}]},`finish_reason`:null}]}\n\n"
    "data: {`choices`:[{`index`:0,`delta`:{`tool_calls`:[{`index`:0,"
    "`function`:{`arguments`:`{\\`city\\``}}]}}]}\n\n"
    "data: {`choices`:[{`index`:0,`delta`:{`tool_calls`:[{`index`:1,`id`:`call_b`,"
    "`type`:`function`,`function`:{`name`:`get_time`,`arguments`:`{}`}}]}}]}\n\n"
    "data: {`choices`:[{`index`:0,`delta`:{`tool_calls`:[{`index`:0,"
    "`function`:{`arguments`:`:\\`Z\xC3\xBCrich\\`}`}}]}}]}\n\n"
    "data: {`choices`:[{`index`:0,`delta`:{},`finish_reason`:`tool_calls`}]}\n\n"
    "data: [DONE]\n\n";

#define TOOLS_JSON \
    "[{`id`:`call_a`,`type`:`function`,`function`:{`name`:`get_weather`," \
    "`arguments`:`{\\`city\\`:\\`Z\xC3\xBCrich\\`}`}},{`id`:`call_b`,`type`:`function`," \
    "`function`:{`name`:`get_time`,`arguments`:`{}`}}]"

static void test_reference_openrouter(void **state)
{
    (void)state;
    result r;
    run_bq(reference_openrouter, &r);
    if (r.status != OPENAI_OK)
        fail_msg("status %d: %s", r.status, r.err.msg);
    assert_string_equal(r.c.content, "Caf\xC3\xA9 \xE2\x82\xAC 5 \xF0\x9F\x90\x88.");
    assert_string_equal(r.c.model, "anthropic/claude-3.5-sonnet");
    assert_string_equal(r.c.provider, "Anthropic");
    assert_string_equal(r.c.id, "gen-1");
    assert_string_equal(r.c.finish_reason, "stop");
    assert_null(r.c.service_tier);
    assert_int_equal(r.c.prompt_tokens, 14);
    assert_int_equal(r.c.completion_tokens, 6);
    assert_int_equal(r.c.has_cost, 1);
    assert_int_equal(r.c.cost_invalid, 0);
    assert_true(r.c.cost == 0.000102);
    assert_int_equal(r.tokens, 4);   /* reasoning + three content chunks */
    assert_int_equal(r.ended, 1);
    assert_int_equal(r.err.code, 0);
    assert_string_equal(r.err.msg, "");
    assert_string_equal(r.stream_error, "");
    result_free(&r);
}

static void test_reference_openai(void **state)
{
    (void)state;
    result r;
    run_bq(reference_openai, &r);
    if (r.status != OPENAI_OK)
        fail_msg("status %d: %s", r.status, r.err.msg);
    assert_string_equal(r.c.content, "\xCE\xB1\xCE\xB2 and \xE6\x97\xA5!");
    assert_string_equal(r.c.model, "gpt-4o-2024-08-06");
    assert_null(r.c.provider);
    assert_string_equal(r.c.finish_reason, "length");
    assert_string_equal(r.c.service_tier, "default");
    assert_int_equal(r.c.prompt_tokens, 9);
    assert_int_equal(r.c.completion_tokens, 3);
    assert_int_equal(r.c.has_cost, 0);
    assert_int_equal(r.c.cost_invalid, 0);
    assert_int_equal(r.tokens, 3);
    result_free(&r);
}

static void test_reference_tools(void **state)
{
    (void)state;
    result r;
    run_bq(reference_tools, &r);
    if (r.status != OPENAI_OK)
        fail_msg("status %d: %s", r.status, r.err.msg);
    char *expected = bq(TOOLS_JSON);
    assert_string_equal(r.c.content, expected);
    free(expected);
    assert_string_equal(r.c.finish_reason, "tool_calls");
    assert_int_equal(r.c.prompt_tokens, -1);   /* no usage: the caller bills the worst case */
    assert_int_equal(r.c.completion_tokens, -1);
    assert_int_equal(r.c.has_cost, 0);
    assert_int_equal(r.tokens, 4);
    result_free(&r);
}

/* Byte by byte, and every 2-way split, give the one-feed result (and a stream, not a
 * whole JSON body, shows progress). */
static void check_splits(const char *stream_bq, int expect_progress);

static void check_every_split(const char *stream_bq)
{
    check_splits(stream_bq, 1);
}

static void check_splits(const char *stream_bq, int expect_progress)
{
    char *text = bq(stream_bq);
    size_t len = strlen(text);
    result whole;
    run_whole(text, 0, &whole);
    assert_int_equal(whole.status, OPENAI_OK);

    size_t *cuts = malloc(len * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;   /* cut before every byte: one byte per feed (and an empty first feed) */
    result r;
    run_cuts(text, len, cuts, len, 0, &r);
    assert_same_result(&whole, &r);
    if (expect_progress)
        assert_true(r.progress_feeds >= 1);
    result_free(&r);

    for (size_t cut = 0; cut <= len; cut++) {
        run_cuts(text, len, &cut, 1, 0, &r);
        assert_same_result(&whole, &r);
        result_free(&r);
    }
    /* three pieces, at a spread of places */
    for (size_t a = 1; a < len; a += 37)
        for (size_t b = a; b < len; b += 53) {
            size_t two[2] = {a, b};
            run_cuts(text, len, two, 2, 0, &r);
            assert_same_result(&whole, &r);
            result_free(&r);
        }
    free(cuts);
    result_free(&whole);
    free(text);
}

static void test_split_openrouter(void **state)
{
    (void)state;
    check_every_split(reference_openrouter);
}

static void test_split_openai(void **state)
{
    (void)state;
    check_every_split(reference_openai);
}

static void test_split_tools(void **state)
{
    (void)state;
    check_every_split(reference_tools);
}

/* A failing stream gives the same failure however it is cut. */
/* A body after a BOM is told apart however the BOM is cut. */
static void test_split_bom_json(void **state)
{
    (void)state;
    check_splits("\xEF\xBB\xBF{`choices`:[{`message`:{`content`:`whole`},"
                 "`finish_reason`:`stop`}]}\n", 0);
}

static void test_split_failure(void **state)
{
    (void)state;
    char *text = bq("data: " CHUNK("{`content`:`ok `}", "null") "\r\n\r\n"
                    ": ping\r\n\r\n"
                    "data: {`error`:{`message`:`Upstream overloaded`,`code`:502}}\r\n\r\n"
                    "data: " CHUNK("{`content`:`more`}", "`stop`") "\r\n\r\n");
    size_t len = strlen(text);
    result whole, r;
    run_whole(text, 0, &whole);
    assert_int_equal(whole.status, OPENAI_ERROR_OBJECT);
    assert_int_equal(whole.failed_feed, 1);
    for (size_t cut = 0; cut <= len; cut++) {
        run_cuts(text, len, &cut, 1, 0, &r);
        assert_same_result(&whole, &r);
        result_free(&r);
    }
    result_free(&whole);
    free(text);
}

/* ---- failures: codes, what follows, the error body ---- */

static void test_failed_stays_failed(void **state)
{
    (void)state;
    stream_parser *p = stream_new(0);
    assert_non_null(p);
    assert_int_equal(feed_bq(p, DATA("Hello", "null")), STREAM_PROGRESS);
    assert_int_equal(feed_bq(p, "data: {oops}\n\n"), STREAM_FAILED);
    assert_string_equal(stream_error(p), "malformed SSE event 2: not JSON");
    assert_int_equal(feed_bq(p, DATA(" world", "`stop`")), STREAM_FAILED);
    assert_int_equal(feed_bq(p, "data: [DONE]\n\n"), STREAM_FAILED);
    size_t len;
    const char *text = stream_text(p, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(text, "Hello", 5);
    assert_int_equal(stream_tokens(p), 1);
    assert_int_equal(stream_ended(p), 0);
    assert_null(stream_error_body(p, &len));
    assert_int_equal(len, 0);
    openai_completion c;
    rf_err err;
    assert_int_equal(stream_finish(p, &c, &err), OPENAI_NOT_JSON);
    assert_int_equal(err.code, EIO);
    assert_string_equal(err.msg, "malformed SSE event 2: not JSON");
    assert_zeroed(&c);
    stream_free(p);
}

static void test_error_codes(void **state)
{
    (void)state;
    static const struct {
        const char *stream;
        int code;
    } rows[] = {
        {"data: {x\n\n", EIO},
        {DATA("\xC0\xAF", "null"), EILSEQ},
        {DATA("\\u0000", "null"), EILSEQ},
        {"data: {`error`:{`message`:`m`}}\n\n", EIO},
        {DATA("a", "`error`"), EIO},
        {DATA("a", "null"), EIO},   /* truncated */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        result r;
        run_bq(rows[i].stream, &r);
        assert_int_not_equal(r.status, OPENAI_OK);
        assert_int_equal(r.err.code, rows[i].code);
        result_free(&r);
    }
}

/* A NUL byte on the wire (not an escape) fails the stream too. */
static void test_raw_nul(void **state)
{
    (void)state;
    static const char text[] = "data: {\"choices\":[{\"delta\":{\"content\":\"a\0b\"},"
                               "\"finish_reason\":\"stop\"}]}\n\n";
    result r;
    run_cuts(text, sizeof text - 1, NULL, 0, 0, &r);
    assert_int_equal(r.status, OPENAI_NOT_JSON);
    /* cJSON stops at the NUL: the event is not one JSON value, or it is refused for it */
    assert_true(strcmp(r.err.msg, "malformed SSE event 1: not JSON") == 0 ||
                strcmp(r.err.msg, "SSE event 1: text contains a NUL character") == 0);
    result_free(&r);
}

/* The event that carried a provider error is kept, so the caller can classify it. */
static void test_error_body_classified(void **state)
{
    (void)state;
    static const char *const streams[] = {
        DATA("a", "null")
        "data: {`error`:{`code`:400,`message`:`Provider returned error`,`metadata`:{"
        "`raw`:`{\\`error\\`:{\\`code\\`:\\`content_filter\\`,\\`message\\`:\\`The response "
        "was filtered due to the prompt triggering Azure OpenAI's content management "
        "policy.\\`}}`,`provider_name`:`Azure`}},`choices`:[{`index`:0,`delta`:{},"
        "`finish_reason`:`error`}]}\n\n",
        "data: {`choices`:[{`delta`:{},`finish_reason`:`error`,"
        "`error`:{`message`:`content_policy_violation`}}]}\n\n",
    };
    for (size_t i = 0; i < 2; i++) {
        stream_parser *p = stream_new(0);
        assert_non_null(p);
        assert_int_equal(feed_bq(p, streams[i]), STREAM_FAILED);
        size_t len;
        const char *body = stream_error_body(p, &len);
        assert_non_null(body);
        assert_true(len > 0 && body[0] == '{' && body[len - 1] == '}');
        openai_error_info info;
        openai_parse_error_status(0, body, len, &info);
        assert_int_equal(info.content_policy, 1);
        if (i == 0) {
            assert_string_equal(info.msg, "Provider returned error");
            assert_string_equal(info.detail_json, "{\"provider_name\":\"Azure\"}");
        }
        stream_free(p);
    }
}

/* ---- progress, tokens, live text ---- */

static void test_progress_and_keepalives(void **state)
{
    (void)state;
    stream_parser *p = stream_new(0);
    assert_non_null(p);
    assert_int_equal(stream_feed(p, "", 0), STREAM_MORE);
    assert_int_equal(feed_bq(p, ": OPENROUTER PROCESSING\n\n"), STREAM_MORE);
    assert_int_equal(feed_bq(p, "data: " CHUNK("{`role`:`assistant`,`content`:``}", "null")
                                "\n\n"), STREAM_MORE);
    assert_int_equal(feed_bq(p, "data: " CHUNK("{`reasoning`:`Let me think`}", "null") "\n\n"),
                     STREAM_PROGRESS);
    size_t len;
    stream_text(p, &len);
    assert_int_equal(len, 0);   /* reasoning is not content */
    assert_int_equal(feed_bq(p, "data: " CHUNK("{`reasoning_content`:`more`}", "null") "\n"),
                     STREAM_MORE);   /* not dispatched yet */
    assert_int_equal(feed_bq(p, "\n"), STREAM_PROGRESS);
    assert_int_equal(feed_bq(p, "data: " CHUNK("{`content`:`Hi`}", "null")), STREAM_MORE);
    assert_int_equal(feed_bq(p, "\n\n"), STREAM_PROGRESS);
    assert_int_equal(feed_bq(p, "data: {`choices`:[],`usage`:{`prompt_tokens`:1}}\n\n"),
                     STREAM_MORE);
    assert_int_equal(stream_tokens(p), 3);
    assert_int_equal(stream_ended(p), 0);
    assert_int_equal(feed_bq(p, "data: [DONE]\n\n"), STREAM_MORE);
    assert_int_equal(stream_ended(p), 1);
    assert_int_equal(feed_bq(p, "data: {garbage\n\n"), STREAM_MORE);   /* after [DONE] */
    const char *text = stream_text(p, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(text, "Hi", 2);
    openai_completion c;
    rf_err err;
    assert_int_equal(stream_finish(p, &c, &err), OPENAI_OK);
    assert_string_equal(c.content, "Hi");
    assert_int_equal(c.prompt_tokens, 1);
    assert_int_equal(c.completion_tokens, -1);
    openai_completion_free(&c);
    /* once only */
    assert_int_equal(stream_finish(p, &c, &err), OPENAI_NOT_JSON);
    assert_int_equal(err.code, EINVAL);
    assert_string_equal(err.msg, "stream already finished");
    assert_zeroed(&c);
    assert_int_equal(stream_feed(p, "data: x\n\n", 9), STREAM_MORE);
    stream_free(p);
    stream_free(NULL);
}

/* A character split between two chunks: the live text holds it back until it is whole. */
static void test_live_text_split_character(void **state)
{
    (void)state;
    stream_parser *p = stream_new(0);
    assert_non_null(p);
    assert_int_equal(feed_bq(p, DATA("caf\xC3", "null")), STREAM_PROGRESS);
    size_t len;
    const char *text = stream_text(p, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(text, "caf", 3);
    assert_int_equal(feed_bq(p, DATA("\xA9 \xF0\x9F", "null")), STREAM_PROGRESS);
    text = stream_text(p, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(text, "caf\xC3\xA9 ", 6);
    assert_int_equal(feed_bq(p, DATA("\x90", "null")), STREAM_PROGRESS);
    stream_text(p, &len);
    assert_int_equal(len, 6);
    assert_int_equal(feed_bq(p, DATA("\x88", "`stop`")), STREAM_PROGRESS);
    text = stream_text(p, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(text, "caf\xC3\xA9 \xF0\x9F\x90\x88", 10);
    openai_completion c;
    rf_err err;
    assert_int_equal(stream_finish(p, &c, &err), OPENAI_OK);
    assert_string_equal(c.content, "caf\xC3\xA9 \xF0\x9F\x90\x88");
    openai_completion_free(&c);
    stream_free(p);

    /* the start of a character that cannot be completed fails as soon as it is known */
    static const char *const bad[] = {"\xE0\x80", "\xF0\x80", "\xED\xA0", "\xF4\x90", "\xC3 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = stream_new(0);
        assert_non_null(p);
        char stream[256];
        snprintf(stream, sizeof stream, "data: {`choices`:[{`delta`:{`content`:`ok%s`}}]}\n\n",
                 bad[i]);
        assert_int_equal(feed_bq(p, stream), STREAM_FAILED);
        assert_string_equal(stream_error(p), "SSE event 1: content is not valid UTF-8");
        stream_free(p);
    }
    /* ...and a good start stays pending */
    static const char *const pending[] = {"\xE0", "\xE0\xA0", "\xF0", "\xF0\x90\x80", "\xF4\x8F",
                                          "\xED\x9F", "\xC2"};
    for (size_t i = 0; i < sizeof pending / sizeof pending[0]; i++) {
        p = stream_new(0);
        assert_non_null(p);
        char stream[256];
        snprintf(stream, sizeof stream, "data: {`choices`:[{`delta`:{`content`:`ok%s`}}]}\n\n",
                 pending[i]);
        assert_int_equal(feed_bq(p, stream), STREAM_PROGRESS);
        stream_text(p, &len);
        assert_int_equal(len, 2);
        stream_free(p);
    }
}

/* Metadata: the last value sent wins; empty and wrong-typed values are ignored. */
static void test_metadata(void **state)
{
    (void)state;
    result r;
    run_bq("data: {`id`:`a`,`model`:`m1`,`provider`:`P1`,`service_tier`:`flex`,"
           "`choices`:[{`delta`:{`content`:`x`}}]}\n\n"
           "data: {`id`:``,`model`:5,`provider`:`P2`,`service_tier`:null,"
           "`choices`:[{`delta`:{},`finish_reason`:`stop`}]}\n\n", &r);
    assert_int_equal(r.status, OPENAI_OK);
    assert_string_equal(r.c.id, "a");
    assert_string_equal(r.c.model, "m1");
    assert_string_equal(r.c.provider, "P2");
    assert_string_equal(r.c.service_tier, "flex");
    result_free(&r);
}

/* ---- max_bytes ---- */

static void test_max_bytes(void **state)
{
    (void)state;
    char *text = bq(DATA("abc", "`stop`"));
    size_t len = strlen(text);
    result r;
    run_whole(text, len, &r);   /* exactly the limit */
    assert_int_equal(r.status, OPENAI_OK);
    result_free(&r);

    run_whole(text, len - 1, &r);
    assert_int_equal(r.status, OPENAI_NOT_JSON);
    assert_int_equal(r.err.code, EFBIG);
    char expected[64];
    snprintf(expected, sizeof expected, "stream is larger than %zu bytes", len - 1);
    assert_string_equal(r.err.msg, expected);
    assert_string_equal(r.stream_error, expected);
    assert_int_equal(r.failed_feed, 1);
    result_free(&r);

    /* the same however it is fed */
    size_t *cuts = malloc(len * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    result bytewise;
    run_cuts(text, len, cuts, len, len - 1, &bytewise);
    assert_int_equal(bytewise.status, OPENAI_NOT_JSON);
    assert_string_equal(bytewise.err.msg, expected);
    result_free(&bytewise);
    free(cuts);
    free(text);

    /* bytes after [DONE] are not counted */
    text = bq(DATA("abc", "null") "data: [DONE]\n\n");
    len = strlen(text);
    char *longer = malloc(len + 100);
    assert_non_null(longer);
    memcpy(longer, text, len);
    memset(longer + len, 'x', 100);
    run_cuts(longer, len + 100, NULL, 0, len + 1, &r);
    assert_int_equal(r.status, OPENAI_OK);
    result_free(&r);
    free(longer);
    free(text);

    /* a huge line is bounded too */
    stream_parser *p = stream_new(1000);
    assert_non_null(p);
    char block[300];
    memset(block, 'a', sizeof block);
    memcpy(block, "data: ", 6);
    int rc = STREAM_MORE;
    for (int i = 0; i < 3; i++)
        rc = feed_exact(p, block, sizeof block);
    assert_int_equal(rc, STREAM_MORE);
    assert_int_equal(feed_exact(p, block, sizeof block), STREAM_FAILED);
    assert_string_equal(stream_error(p), "stream is larger than 1000 bytes");
    stream_free(p);
}

/* A long answer in many small chunks: linear, and exact. */
static void test_long_stream(void **state)
{
    (void)state;
    stream_parser *p = stream_new(0);
    assert_non_null(p);
    char event[256];
    size_t expect_len = 0;
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(event, sizeof event,
                         "data: {\"choices\":[{\"delta\":{\"content\":\"t%d \\u00e9\"}}]}\n\n", i);
        assert_int_equal(stream_feed(p, event, (size_t)n), STREAM_PROGRESS);
        expect_len += (size_t)snprintf(NULL, 0, "t%d ", i) + 2;
    }
    assert_int_equal(feed_bq(p, DATA("", "`stop`")), STREAM_MORE);
    assert_int_equal(stream_tokens(p), 20000);
    openai_completion c;
    rf_err err;
    assert_int_equal(stream_finish(p, &c, &err), OPENAI_OK);
    assert_int_equal(strlen(c.content), expect_len);
    assert_memory_equal(c.content, "t0 \xC3\xA9t1 ", 8);
    openai_completion_free(&c);
    stream_free(p);
}

/* ---- main ---- */

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_openrouter),
        cmocka_unit_test(test_reference_openai),
        cmocka_unit_test(test_reference_tools),
        cmocka_unit_test(test_split_openrouter),
        cmocka_unit_test(test_split_openai),
        cmocka_unit_test(test_split_tools),
        cmocka_unit_test(test_split_bom_json),
        cmocka_unit_test(test_split_failure),
        cmocka_unit_test(test_failed_stays_failed),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_raw_nul),
        cmocka_unit_test(test_error_body_classified),
        cmocka_unit_test(test_progress_and_keepalives),
        cmocka_unit_test(test_live_text_split_character),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_long_stream),
    };
    return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
