/* stream_test.h — what the stream parser's two test files share (test_stream.c: the
 * reference streams, splits and failures; test_stream_cases.c: the tables of SSE, tool
 * call and usage cases): feeding helpers that copy every input to an exact-size heap
 * buffer, the result of a parse, and assertions on it. */
#ifndef RF_STREAM_TEST_H
#define RF_STREAM_TEST_H

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

#define COUNT(a) (sizeof (a) / sizeof (a)[0])

/* ---- helpers ---- */

/* A malloc'd copy of s with every ` turned into ". */
static inline char *bq(const char *s)
{
    char *copy = strdup(s);
    assert_non_null(copy);
    for (char *p = copy; *p; p++)
        if (*p == '`')
            *p = '"';
    return copy;
}

/* Feed s[0..len) as one exact-size heap copy; returns stream_feed's result. */
static inline int feed_exact(stream_parser *p, const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = stream_feed(p, copy, len);
    free(copy);
    return rc;
}

/* Feed a ` string. */
static inline int feed_bq(stream_parser *p, const char *s)
{
    char *text = bq(s);
    int rc = feed_exact(p, text, strlen(text));
    free(text);
    return rc;
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

static inline void result_free(result *r)
{
    openai_completion_free(&r->c);
}

/* Feed text cut at the given offsets (sorted, each in [0, len]), checking the live text
 * after every feed: valid UTF-8, and only ever growing by appending.  Then finish. */
static inline void run_cuts(const char *text, size_t len, const size_t *cuts, size_t n_cuts,
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
        assert_true(openai_valid_utf8(live, live_len));
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

static inline void run_whole(const char *text, size_t max_bytes, result *r)
{
    run_cuts(text, strlen(text), NULL, 0, max_bytes, r);
}

static inline void run_bq(const char *stream_bq, result *r)
{
    char *text = bq(stream_bq);
    run_whole(text, 0, r);
    free(text);
}

static inline void assert_string_or_null(const char *actual, const char *expected)
{
    if (expected)
        assert_string_equal(actual ? actual : "(null)", expected);
    else
        assert_null(actual);
}

static inline void assert_same_string(const char *a, const char *b)
{
    if (!a || !b)
        assert_true(a == b);
    else
        assert_string_equal(a, b);
}

static inline void assert_same_result(const result *a, const result *b)
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
static inline void assert_zeroed(const openai_completion *c)
{
    openai_completion zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(c, &zero, sizeof zero);
}

/* A chunk as OpenRouter streams it (` for "). */
#define CHUNK(delta, finish) \
    "{`id`:`gen-1`,`provider`:`Anthropic`,`model`:`anthropic/claude-3.5-sonnet`," \
    "`object`:`chat.completion.chunk`,`choices`:[{`index`:0,`delta`:" delta \
    ",`finish_reason`:" finish "}]}"

/* A data event carrying one piece of content. */
#define DATA(content, finish) "data: " CHUNK("{`content`:`" content "`}", finish) "\n\n"

#endif
