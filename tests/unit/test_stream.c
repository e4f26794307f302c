/* test_stream.c — the incremental SSE chat-completion parser (src/stream.c), cmocka.
 *
 * Streams in these tests are written with ` for " (bq() converts).  Every input is fed
 * from exact-size heap copies, so a read past a feed's end shows up under ASan and
 * valgrind.  The reference streams are also fed byte by byte and in every 2-way split, and
 * must give the same result as one feed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"
#include "stream.h"

/* ---- helpers ---- */

/* A malloc'd copy of s with every ` turned into ". */
static char *bq(const char *s)
{
    char *copy = strdup(s);
    assert_non_null(copy);
    for (char *p = copy; *p; p++)
        if (*p == '`')
            *p = '"';
    return copy;
}

/* Feed s[0..len) as one exact-size heap copy; returns stream_feed's result. */
static int feed_exact(stream_parser *p, const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = stream_feed(p, copy, len);
    free(copy);
    return rc;
}

/* Feed a ` string. */
static int feed_bq(stream_parser *p, const char *s)
{
    char *text = bq(s);
    int rc = feed_exact(p, text, strlen(text));
    free(text);
    return rc;
}

static int valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = openai_utf8_char_len((const unsigned char *)s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Everything a finished stream says, for comparing two runs. */
typedef struct result {
    openai_status status;
    rf_err err;
    openai_completion c;
    char stream_error[512];
    long tokens;
    int ended;
    int failed_feed;         /* some feed returned STREAM_FAILED */
    int progress_feeds;      /* feeds that returned STREAM_PROGRESS */
} result;

static void result_free(result *r)
{
    openai_completion_free(&r->c);
}

/* Feed text cut at the given offsets (sorted, each in [0, len]), checking the live text
 * after every feed: valid UTF-8, and only ever growing by appending.  Then finish. */
static void run_cuts(const char *text, size_t len, const size_t *cuts, size_t n_cuts,
                     size_t max_bytes, result *r)
{
    memset(r, 0, sizeof *r);
    stream_parser *p = stream_new(max_bytes);
    assert_non_null(p);
    char *seen = NULL;         /* the live text so far */
    size_t seen_len = 0, at = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        int rc = feed_exact(p, text + at, end - at);
        at = end;
        assert_true(rc == STREAM_MORE || rc == STREAM_PROGRESS || rc == STREAM_FAILED);
        r->failed_feed |= rc == STREAM_FAILED;
        r->progress_feeds += rc == STREAM_PROGRESS;
        if (r->failed_feed)
            assert_int_equal(rc, STREAM_FAILED);   /* failed stays failed */
        size_t live_len;
        const char *live = stream_text(p, &live_len);
        assert_non_null(live);
        assert_true(live_len >= seen_len);
        assert_true(valid_utf8(live, live_len));
        if (seen_len)
            assert_memory_equal(live, seen, seen_len);
        if (live_len > seen_len) {
            char *grown = realloc(seen, live_len);
            assert_non_null(grown);
            seen = grown;
            memcpy(seen, live, live_len);
            seen_len = live_len;
        }
    }
    snprintf(r->stream_error, sizeof r->stream_error, "%s", stream_error(p));
    r->tokens = stream_tokens(p);
    r->ended = stream_ended(p);
    r->status = stream_finish(p, &r->c, &r->err);
    if (r->status == OPENAI_OK && seen_len && r->c.content[0] != '[') {
        /* the live text was the answer's start (a last event may be dispatched by finish) */
        assert_true(strlen(r->c.content) >= seen_len);
        assert_memory_equal(r->c.content, seen, seen_len);
    }
    size_t after_len;
    stream_text(p, &after_len);
    if (r->status == OPENAI_OK)
        assert_int_equal(after_len, 0);   /* content moved out */
    free(seen);
    stream_free(p);
}

static void run_whole(const char *text, size_t max_bytes, result *r)
{
    run_cuts(text, strlen(text), NULL, 0, max_bytes, r);
}

static void run_bq(const char *stream_bq, result *r)
{
    char *text = bq(stream_bq);
    run_whole(text, 0, r);
    free(text);
}

static void assert_string_or_null(const char *actual, const char *expected)
{
    if (expected)
        assert_string_equal(actual ? actual : "(null)", expected);
    else
        assert_null(actual);
}

static void assert_same_string(const char *a, const char *b)
{
    if (!a || !b)
        assert_true(a == b);
    else
        assert_string_equal(a, b);
}

static void assert_same_result(const result *a, const result *b)
{
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->err.msg, b->err.msg);
    assert_int_equal(a->err.code, b->err.code);
    assert_string_equal(a->stream_error, b->stream_error);
    assert_int_equal(a->tokens, b->tokens);
    assert_int_equal(a->ended, b->ended);
    assert_int_equal(a->failed_feed, b->failed_feed);
    assert_same_string(a->c.content, b->c.content);
    assert_same_string(a->c.model, b->c.model);
    assert_same_string(a->c.provider, b->c.provider);
    assert_same_string(a->c.finish_reason, b->c.finish_reason);
    assert_same_string(a->c.id, b->c.id);
    assert_same_string(a->c.service_tier, b->c.service_tier);
    assert_int_equal(a->c.prompt_tokens, b->c.prompt_tokens);
    assert_int_equal(a->c.completion_tokens, b->c.completion_tokens);
    assert_int_equal(a->c.has_cost, b->c.has_cost);
    assert_int_equal(a->c.cost_invalid, b->c.cost_invalid);
    assert_true(a->c.cost == b->c.cost);
}

/* A completion that is all zero (what a failed finish leaves). */
static void assert_zeroed(const openai_completion *c)
{
    openai_completion zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(c, &zero, sizeof zero);
}

/* ---- reference streams ---- */

/* OpenRouter-like: keep-alive comments, a role chunk, content with 2-, 3- and 4-byte
 * characters, reasoning, usage with cost in a final chunk with empty choices, [DONE]. */
#define CHUNK(delta, finish) \
    "{`id`:`gen-1`,`provider`:`Anthropic`,`model`:`anthropic/claude-3.5-sonnet`," \
    "`object`:`chat.completion.chunk`,`choices`:[{`index`:0,`delta`:" delta \
    ",`finish_reason`:" finish "}]}"

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

/* ---- SSE rules ---- */

typedef struct sse_case {
    const char *name;
    const char *stream;          /* ` for " */
    openai_status status;
    const char *content;         /* OK: expected content */
    const char *finish_reason;   /* OK: expected (NULL: none) */
    const char *error;           /* not OK: expected err.msg */
} sse_case;

#define DATA(content, finish) "data: " CHUNK("{`content`:`" content "`}", finish) "\n\n"

static const sse_case sse_cases[] = {
    {"sse_lf", DATA("a", "null") DATA("b", "`stop`"), OPENAI_OK, "ab", "stop", NULL},
    {"sse_crlf", "data: " CHUNK("{`content`:`a`}", "`stop`") "\r\n\r\n", OPENAI_OK, "a", "stop",
     NULL},
    {"sse_cr_only", "data: " CHUNK("{`content`:`a`}", "null") "\r\rdata: [DONE]\r\r",
     OPENAI_OK, "a", NULL, NULL},
    {"sse_mixed_line_ends", "data: " CHUNK("{`content`:`a`}", "null") "\r\n\n"
     "data: " CHUNK("{`content`:`b`}", "`stop`") "\n\r", OPENAI_OK, "ab", "stop", NULL},
    {"sse_no_space_after_colon", "data:" CHUNK("{`content`:`a`}", "`stop`") "\n\n", OPENAI_OK,
     "a", "stop", NULL},
    {"sse_only_one_space_removed", "data:  " CHUNK("{`content`:`a`}", "`stop`") "\n\n",
     OPENAI_OK, "a", "stop", NULL},
    {"sse_one_space_removed_per_line",   /* seen in a string that spans data lines */
     "data: {`choices`:[{`delta`:{`content`:`a\ndata:  b\ndata:c\ndata: `},"
     "`finish_reason`:`stop`}]}\n\n", OPENAI_OK, "a\n b\nc\n", "stop", NULL},
    {"sse_comments_ignored", ": OPENROUTER PROCESSING\n\n:\n" DATA("a", "null")
     ": OPENROUTER PROCESSING\n\n" DATA("b", "`stop`") ": bye\n", OPENAI_OK, "ab", "stop",
     NULL},
    {"sse_comment_inside_event", "data: {`choices`:[{`delta`:\n: keep-alive\n"
     "data: {`content`:`a`},`finish_reason`:`stop`}]}\n\n", OPENAI_OK, "a", "stop", NULL},
    {"sse_multiline_data_joined", "data: {`choices`:\ndata: [{`delta`:{`content`:\n"
     "data: `x`},`finish_reason`:`stop`}]}\n\n", OPENAI_OK, "x", "stop", NULL},
    {"sse_fields_ignored", "event: message\nid: 7\nretry: 10\nfoo: bar\nid\n"
     DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"sse_event_without_data_ignored", "event: ping\n\nid: 3\n\n" DATA("a", "`stop`"),
     OPENAI_OK, "a", "stop", NULL},
    {"sse_empty_data_ignored", "data:\n\ndata: \n\ndata\n\n" DATA("a", "`stop`"), OPENAI_OK,
     "a", "stop", NULL},
    {"sse_leading_blank_lines", "\n\n\r\n  \n" DATA("a", "`stop`"), OPENAI_OK, "a", "stop",
     NULL},
    {"sse_bom", "\xEF\xBB\xBF" DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"sse_done_ends_stream", DATA("a", "null") "data: [DONE]\n\n" "data: {broken\n\n"
     DATA("ignored", "`stop`"), OPENAI_OK, "a", NULL, NULL},
    {"sse_done_with_spaces", DATA("a", "null") "data:   [DONE]  \n\n", OPENAI_OK, "a", NULL,
     NULL},
    {"sse_final_event_without_blank_line", DATA("a", "null") "data: [DONE]\n", OPENAI_OK, "a",
     NULL, NULL},
    {"sse_final_line_without_line_end", DATA("a", "null") "data: [DONE]", OPENAI_OK, "a", NULL,
     NULL},
    {"sse_final_chunk_without_line_end",
     "data: " CHUNK("{`content`:`a`}", "null") "\n\ndata: " CHUNK("{`content`:`b`}", "`stop`"),
     OPENAI_OK, "ab", "stop", NULL},
    {"sse_cut_final_event_dropped_after_finish", DATA("a", "`stop`") "data: {`choices`:[],`us",
     OPENAI_OK, "a", "stop", NULL},
    {"sse_cut_final_event_truncated", DATA("a", "null") "data: {`choices`:[{`delta`:{`cont",
     OPENAI_TRUNCATED, .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"sse_other_choice_index_skipped",
     "data: {`choices`:[{`index`:1,`delta`:{`content`:`B`}}]}\n\n"
     "data: {`choices`:[{`index`:1,`delta`:{`content`:`B`}},{`index`:0,`delta`:{`content`:`A`}}]}\n\n"
     "data: {`choices`:[{`index`:0,`delta`:{},`finish_reason`:`stop`}]}\n\n",
     OPENAI_OK, "A", "stop", NULL},
    {"sse_content_parts", "data: {`choices`:[{`delta`:{`content`:[{`type`:`text`,`text`:`a`},"
     "{`type`:`image_url`},{`type`:`text`,`text`:`b`}]},`finish_reason`:`stop`}]}\n\n",
     OPENAI_OK, "ab", "stop", NULL},
    {"sse_finish_reason_last_wins", DATA("a", "`length`") DATA("", "`stop`"), OPENAI_OK, "a",
     "stop", NULL},
    {"sse_content_filter_finish_kept", DATA("partial", "`content_filter`"), OPENAI_OK,
     "partial", "content_filter", NULL},
    /* JSON bodies: a provider that answered "stream": true with a whole response */
    {"json_body_completion", "  \n{`choices`:[{`message`:{`content`:`whole`},"
     "`finish_reason`:`stop`}]}\n", OPENAI_OK, "whole", "stop", NULL},
    {"json_body_after_bom", "\xEF\xBB\xBF{`choices`:[{`message`:{`content`:`whole`},"
     "`finish_reason`:`stop`}]}\n", OPENAI_OK, "whole", "stop", NULL},
    {"sse_after_bom", "\xEF\xBB\xBF" DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"json_body_error", "{`error`:{`message`:`Rate limited`,`code`:429}}", OPENAI_ERROR_OBJECT,
     .error = "provider returned an error object: 'Rate limited' (code 429)"},
    {"json_body_truncated", "{`choices`:[{`message`:{`content`:`who", OPENAI_NOT_JSON,
     .error = "provider returned a body that is not JSON (38 bytes)"},
    /* endings */
    {"end_done_only", DATA("a", "null") "data: [DONE]\n\n", OPENAI_OK, "a", NULL, NULL},
    {"end_finish_only", DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"end_neither_truncated", DATA("a", "null") DATA("b", "null"), OPENAI_TRUNCATED,
     .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"end_empty_stream", "", OPENAI_TRUNCATED,
     .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"end_only_keepalives", ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n",
     OPENAI_TRUNCATED, .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"end_finish_no_content", DATA("", "`stop`") "data: [DONE]\n\n", OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"end_done_no_content", "data: [DONE]\n\n", OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"end_reasoning_only", "data: " CHUNK("{`reasoning`:`hmm`}", "`stop`") "\n\n",
     OPENAI_EMPTY_CONTENT, .error = "provider returned an empty message"},
    {"end_incomplete_utf8", DATA("caf\xC3", "`stop`"), OPENAI_NOT_JSON,
     .error = "provider returned text that is not valid UTF-8"},
    /* failures */
    {"fail_error_chunk_openrouter",
     DATA("partial", "null") "data: {`id`:`gen-1`,`object`:`chat.completion.chunk`,"
     "`provider`:`Together`,`error`:{`code`:502,`message`:`Upstream overloaded`},"
     "`choices`:[{`index`:0,`delta`:{`content`:``},`finish_reason`:`error`}]}\n\n",
     OPENAI_ERROR_OBJECT, .error = "provider error mid-stream: 'Upstream overloaded' (code 502)"},
    {"fail_error_chunk_openai", DATA("x", "null")
     "data: {`error`: {`message`: `The server had an error while processing your request.`,"
     " `type`: `server_error`}}\n\n", OPENAI_ERROR_OBJECT,
     .error = "provider error mid-stream: 'The server had an error while processing your "
              "request.'"},
    {"fail_error_string", "data: {`error`:`overloaded`}\n\n", OPENAI_ERROR_OBJECT,
     .error = "provider error mid-stream: 'overloaded'"},
    {"fail_error_vllm", "data: {`object`:`error`,`message`:`engine dead`,`code`:500}\n\n",
     OPENAI_ERROR_OBJECT, .error = "provider error mid-stream: 'engine dead'"},
    {"fail_error_empty_object", "data: {`error`:{}}\n\n", OPENAI_ERROR_OBJECT,
     .error = "provider error mid-stream"},
    {"fail_finish_error", DATA("partial", "`error`"), OPENAI_FINISH_ERROR,
     .error = "provider finished with finish_reason \"error\""},
    {"fail_finish_error_with_message",
     "data: {`choices`:[{`delta`:{},`finish_reason`:`error`,`error`:{`message`:`cut`,"
     "`code`:`server_error`}}]}\n\n", OPENAI_FINISH_ERROR,
     .error = "provider finished with finish_reason \"error\": 'cut' (code server_error)"},
    {"fail_malformed_event_number", DATA("a", "null") DATA("b", "null") ": x\n\n"
     "data: {`choices`: [\n\n", OPENAI_NOT_JSON, .error = "malformed SSE event 3: not JSON"},
    {"fail_malformed_text", "data: OPENROUTER PROCESSING\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not JSON"},
    {"fail_two_documents", "data: {}{}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not JSON"},
    {"fail_not_object_array", "data: [1]\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not a JSON object"},
    {"fail_not_object_string", "data: `hi`\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not a JSON object"},
    {"fail_choices_not_array", "data: {`choices`:{`0`:{}}}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: choices is not an array"},
    {"fail_choice_not_object", "data: {`choices`:[`a`]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: choice is not an object"},
    {"fail_delta_not_object", "data: {`choices`:[{`delta`:`a`}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: delta is not an object"},
    {"fail_content_not_text", "data: {`choices`:[{`delta`:{`content`:5}}]}\n\n",
     OPENAI_NOT_JSON, .error = "malformed SSE event 1: delta.content is not text"},
    {"fail_tool_calls_not_array", "data: {`choices`:[{`delta`:{`tool_calls`:{}}}]}\n\n",
     OPENAI_NOT_JSON, .error = "malformed SSE event 1: delta.tool_calls is not an array"},
    {"fail_tool_call_not_object", "data: {`choices`:[{`delta`:{`tool_calls`:[1]}}]}\n\n",
     OPENAI_NOT_JSON, .error = "malformed SSE event 1: tool call is not an object"},
    {"fail_tool_call_index_negative",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:-1}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_tool_call_index_fraction",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:0.5}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_tool_call_index_huge",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:128}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_tool_call_index_string",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:`0`}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_invalid_utf8", DATA("ok", "null") DATA("caf\xE9!", "`stop`"), OPENAI_NOT_JSON,
     .error = "SSE event 2: content is not valid UTF-8"},
    {"fail_surrogate_utf8", DATA("\xED\xA0\x80", "`stop`"), OPENAI_NOT_JSON,
     .error = "SSE event 1: content is not valid UTF-8"},
    {"fail_escaped_nul", DATA("a\\u0000b", "`stop`"), OPENAI_NOT_JSON,
     .error = "SSE event 1: text contains a NUL character"},
    {"fail_tool_call_bad_utf8",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:0,`function`:{`name`:`f`,"
     "`arguments`:`\xFF`}}]},`finish_reason`:`tool_calls`}]}\n\n", OPENAI_NOT_JSON,
     .error = "provider returned a tool call that is not valid UTF-8"},
    {"fail_error_after_finish", DATA("a", "`stop`") "data: {`error`:{`message`:`late`}}\n\n",
     OPENAI_ERROR_OBJECT, .error = "provider error mid-stream: 'late'"},
};

static void test_sse_case(void **state)
{
    const sse_case *c = *state;
    result r;
    run_bq(c->stream, &r);
    if (r.status != c->status)
        fail_msg("status %d, expected %d (%s)", r.status, c->status, r.err.msg);
    if (c->status == OPENAI_OK) {
        char *content = bq(c->content);
        assert_string_equal(r.c.content, content);
        free(content);
        assert_string_or_null(r.c.finish_reason, c->finish_reason);
        assert_int_equal(r.err.code, 0);
    } else {
        assert_zeroed(&r.c);
        assert_string_equal(r.err.msg, c->error);
        assert_true(r.err.code != 0);
        /* a failure seen while feeding is reported by stream_error as well */
        if (r.failed_feed)
            assert_string_equal(r.stream_error, c->error);
        else
            assert_string_equal(r.stream_error, "");
    }
    result_free(&r);
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

/* ---- tool calls ---- */

typedef struct tool_case {
    const char *name;
    const char *stream;          /* ` for " */
    const char *content;         /* ` for " */
} tool_case;

#define TOOL_DELTA(calls) "data: {`choices`:[{`index`:0,`delta`:{`tool_calls`:" calls "}}]}\n\n"
#define TOOL_END "data: {`choices`:[{`delta`:{},`finish_reason`:`tool_calls`}]}\n\n"

static const tool_case tool_cases[] = {
    {"tools_whole_in_one_delta",
     TOOL_DELTA("[{`index`:0,`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,"
                "`arguments`:`{\\`a\\`:1}`}}]") TOOL_END,
     "[{`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,`arguments`:`{\\`a\\`:1}`}}]"},
    {"tools_without_index_by_id",
     TOOL_DELTA("[{`id`:`c1`,`function`:{`name`:`f`,`arguments`:`{`}}]")
     TOOL_DELTA("[{`function`:{`arguments`:`}`}}]")
     TOOL_DELTA("[{`id`:`c2`,`function`:{`name`:`g`,`arguments`:`[]`}}]") TOOL_END,
     "[{`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,`arguments`:`{}`}},"
     "{`id`:`c2`,`type`:`function`,`function`:{`name`:`g`,`arguments`:`[]`}}]"},
    {"tools_without_index_same_id_repeated",
     TOOL_DELTA("[{`id`:`c1`,`function`:{`name`:`f`,`arguments`:`1`}}]")
     TOOL_DELTA("[{`id`:`c1`,`function`:{`name`:`f`,`arguments`:`2`}}]") TOOL_END,
     "[{`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,`arguments`:`12`}}]"},
    {"tools_skipped_index", TOOL_DELTA("[{`index`:2,`function`:{`name`:`h`}}]") TOOL_END,
     "[{`type`:`function`,`function`:{`name`:`h`,`arguments`:``}}]"},
    {"tools_first_name_kept",
     TOOL_DELTA("[{`index`:0,`function`:{`name`:`f`}}]")
     TOOL_DELTA("[{`index`:0,`function`:{`name`:`other`,`arguments`:`x`}}]") TOOL_END,
     "[{`type`:`function`,`function`:{`name`:`f`,`arguments`:`x`}}]"},
    {"tools_with_content_content_wins",
     TOOL_DELTA("[{`index`:0,`function`:{`name`:`f`}}]") DATA("I will call f.", "`tool_calls`"),
     "I will call f."},
    {"tools_last_index_127", TOOL_DELTA("[{`index`:127,`function`:{`name`:`z`}}]") TOOL_END,
     "[{`type`:`function`,`function`:{`name`:`z`,`arguments`:``}}]"},
};

static void test_tool_case(void **state)
{
    const tool_case *c = *state;
    result r;
    run_bq(c->stream, &r);
    if (r.status != OPENAI_OK)
        fail_msg("status %d: %s", r.status, r.err.msg);
    char *content = bq(c->content);
    assert_string_equal(r.c.content, content);
    free(content);
    assert_string_equal(r.c.finish_reason, "tool_calls");
    result_free(&r);
}

/* ---- usage and cost ---- */

typedef struct usage_case {
    const char *name;
    const char *usage_chunks;    /* ` for ": events after the content */
    long prompt_tokens, completion_tokens;
    int has_cost, cost_invalid;
    double cost;
} usage_case;

#define USAGE(u) "data: {`choices`:[],`usage`:" u "}\n\n"

static const usage_case usage_cases[] = {
    {"usage_absent", "", -1, -1, 0, 0, 0},
    {"usage_null", USAGE("null"), -1, -1, 0, 0, 0},
    {"usage_tokens_only", USAGE("{`prompt_tokens`:5,`completion_tokens`:2}"), 5, 2, 0, 0, 0},
    {"usage_cost", USAGE("{`prompt_tokens`:5,`completion_tokens`:2,`cost`:0.25}"), 5, 2, 1, 0,
     0.25},
    {"usage_cost_zero", USAGE("{`cost`:0}"), -1, -1, 1, 0, 0},
    {"usage_cost_negative_zero", USAGE("{`cost`:-0.0}"), -1, -1, 1, 0, 0},
    {"usage_cost_string", USAGE("{`cost`:`0.25`}"), -1, -1, 0, 1, 0},
    {"usage_cost_null", USAGE("{`cost`:null}"), -1, -1, 0, 1, 0},
    {"usage_cost_negative", USAGE("{`cost`:-1}"), -1, -1, 0, 1, 0},
    {"usage_cost_infinite", USAGE("{`cost`:1e999}"), -1, -1, 0, 1, 0},
    {"usage_cost_object", USAGE("{`cost`:{`usd`:1}}"), -1, -1, 0, 1, 0},
    {"usage_bad_tokens", USAGE("{`prompt_tokens`:-3,`completion_tokens`:`7`}"), -1, -1, 0, 0, 0},
    {"usage_later_overrides", USAGE("{`prompt_tokens`:5,`completion_tokens`:1,`cost`:`x`}")
     USAGE("{`completion_tokens`:9,`cost`:0.5}"), 5, 9, 1, 0, 0.5},
    {"usage_later_invalid_cost_overrides", USAGE("{`cost`:0.5}") USAGE("{`cost`:null}"), -1, -1,
     0, 1, 0},
    {"usage_not_object", USAGE("[{`prompt_tokens`:1}]"), -1, -1, 0, 0, 0},
    {"usage_with_content_chunk",
     "data: {`choices`:[{`delta`:{`content`:`!`}}],`usage`:{`prompt_tokens`:3,`cost`:1}}\n\n",
     3, -1, 1, 0, 1},
};

static void test_usage_case(void **state)
{
    const usage_case *c = *state;
    char stream[2048];
    snprintf(stream, sizeof stream, "%s%s%s", DATA("x", "`stop`"), c->usage_chunks,
             "data: [DONE]\n\n");
    result r;
    run_bq(stream, &r);
    if (r.status != OPENAI_OK)
        fail_msg("status %d: %s", r.status, r.err.msg);
    assert_int_equal(r.c.prompt_tokens, c->prompt_tokens);
    assert_int_equal(r.c.completion_tokens, c->completion_tokens);
    assert_int_equal(r.c.has_cost, c->has_cost);
    assert_int_equal(r.c.cost_invalid, c->cost_invalid);
    assert_true(r.c.cost == c->cost);
    assert_false(signbit(r.c.cost));
    result_free(&r);
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

#define COUNT(a) (sizeof (a) / sizeof (a)[0])

int main(void)
{
    static const struct CMUnitTest fixed[] = {
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
    struct CMUnitTest tests[COUNT(fixed) + COUNT(sse_cases) + COUNT(tool_cases) +
                            COUNT(usage_cases)];
    size_t n = 0;
    for (size_t i = 0; i < COUNT(fixed); i++)
        tests[n++] = fixed[i];
    for (size_t i = 0; i < COUNT(sse_cases); i++)
        tests[n++] = (struct CMUnitTest){sse_cases[i].name, test_sse_case, NULL, NULL,
                                         (void *)&sse_cases[i]};
    for (size_t i = 0; i < COUNT(tool_cases); i++)
        tests[n++] = (struct CMUnitTest){tool_cases[i].name, test_tool_case, NULL, NULL,
                                         (void *)&tool_cases[i]};
    for (size_t i = 0; i < COUNT(usage_cases); i++)
        tests[n++] = (struct CMUnitTest){usage_cases[i].name, test_usage_case, NULL, NULL,
                                         (void *)&usage_cases[i]};
    return _cmocka_run_group_tests("stream", tests, n, NULL, NULL);
}
